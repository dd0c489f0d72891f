"""What every package of the project may import: it imports nothing of the project itself.

``errors``: the user-error types (``PoseStreamError`` and its subclasses) and the one-line
reporting of command-line tools.  backbones/ and stages/ raise them without depending on stream/.
"""
