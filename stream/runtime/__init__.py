"""The pipeline's stages and how they are put together, for the local pipeline and Ray alike.

- ``stages``: capture, preprocess, inference, postprocess, render (each a ``stream.stage.Stage``).
- ``batching``: one lane per source in front of inference, rounds of frames through it.
- ``build``: ``build_stages(config, engine, sinks)``, ``load_engine(config)``.
"""

from stream.runtime.build import build_stages, expected_input_size, load_engine, make_drawer, postprocess_stage, warm_up
from stream.runtime.stages import CaptureStage, InferenceStage, PostprocessStage, PreprocessStage, RenderStage

__all__ = ["CaptureStage", "InferenceStage", "PostprocessStage", "PreprocessStage", "RenderStage",
           "build_stages", "expected_input_size", "load_engine", "make_drawer", "postprocess_stage", "warm_up"]
