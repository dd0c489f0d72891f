"""The files of an OpenVINO IR network (``spec.ir``): where they are, and fetching them.  No torch.

Layout (Open Model Zoo's): ``<weights folder>/<ir.folder>/<variant>/<model>.xml`` with its
``.bin`` beside it, e.g. ``weights/omz/FP16-INT8/human-pose-estimation-0001.xml``.  A run without
``--weights`` uses the default variant, else any other variant whose pair is there (an IR put
there by hand is used as it is, never checked or downloaded again), else fetches the default
variant.  ``fetch_ir`` downloads one variant's ``.bin`` then its ``.xml`` with
:mod:`backbones.download` (progress bar, resume, checks, atomic rename), so a present ``.xml``
always has its ``.bin``; files already there are kept.

Checks: the published size and SHA-384 (``WeightSource``).  A mirror (``url_base``, the
``model.weights_url`` config key or ``$POSESTREAM_WEIGHTS_URL_<NAME>``) serves the same layout
under its base URL, ``<base>/<variant>/<model>.xml``; when it also serves ``<base>/SHA256SUMS``
(``sha256sum`` output, paths relative to the base), its files are checked against that instead,
so a mirror may carry another release of the IR.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

import backbones
from backbones.download import TIMEOUT_S, DownloadError, download
from backbones.registry import BackboneSpec, WeightSource
from posestream_common.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

MANIFEST = "SHA256SUMS"
MANIFEST_MAX_BYTES = 1 << 20


def variants(spec: BackboneSpec) -> tuple[str, ...]:
    """The published variants (the first folder of each source's file name), default first."""
    published = tuple(dict.fromkeys(source.file_name.split("/")[0] for source in spec.sources))
    default = spec.ir.default_variant
    return (default, *(name for name in published if name != default))


def ir_folder(spec: BackboneSpec) -> Path:
    """``<weights folder>/<ir.folder>`` (the weights folder follows ``$POSESTREAM_WEIGHTS_DIR``)."""
    return backbones.weights_dir() / spec.ir.folder


def ir_path(spec: BackboneSpec, variant: str | None = None, folder: Path | None = None) -> Path:
    """The ``.xml`` of ``variant`` (default: the default variant) in ``folder`` (default:
    ``ir_folder(spec)``)."""
    variant = check_variant(spec, variant)
    return (folder or ir_folder(spec)) / variant / f"{spec.ir.model_name}.xml"


def check_variant(spec: BackboneSpec, variant: str | None) -> str:
    """``variant`` (None: the default) when published; ConfigError listing the variants."""
    if variant is None:
        return spec.ir.default_variant
    known = variants(spec)
    match = next((name for name in known if name.lower() == variant.lower()), None)
    if match is None:
        raise ConfigError(f"{spec.name} variant {variant!r} is unknown; published variants: "
                          f"{', '.join(known)}")
    return match


def installed_ir(spec: BackboneSpec, folder: Path | None = None) -> Path | None:
    """The ``.xml`` a run uses without the network: the first variant (default first) whose
    ``.xml`` and ``.bin`` are both there; None when no variant is."""
    for variant in variants(spec):
        xml = ir_path(spec, variant, folder)
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    return None


def engine_error(spec: BackboneSpec, engine: str) -> ConfigError:
    """The user error of asking ``engine`` to run an IR network."""
    return ConfigError(f"model.backbone {spec.name!r} is an OpenVINO IR, not a torch module: it "
                       f"runs only with --engine {' or '.join(spec.ir.engines)}, not {engine}")


def resolve_ir(spec: BackboneSpec, weights: str | Path | None = None, *,
               url_base: str | None = None) -> Path:
    """The ``.xml`` to run (its ``.bin`` beside it): ``weights`` when given (checked), else the
    installed IR, else the default variant fetched now.  ConfigError / WeightsError otherwise."""
    fetch_hint = f"python -m backbones.fetch {spec.name} fetches it into {ir_path(spec)}"
    if weights is not None and str(weights) == backbones.RANDOM:
        raise ConfigError(f"model.weights 'random': the {spec.name} backbone is an OpenVINO IR and "
                          f"has no random variant; leave --weights out ({fetch_hint})")
    if weights is None:
        return installed_ir(spec) or fetch_ir(spec, url_base=url_base)
    path = Path(weights).expanduser()
    if path.suffix.lower() != ".xml":
        raise ConfigError(f"model.weights {str(path)!r}: the {spec.name} backbone needs an "
                          f"OpenVINO IR .xml file (its .bin beside it); {fetch_hint}")
    if not path.is_file():
        raise WeightsError(f"no {spec.name} IR at {path}; leave --weights out to use the "
                           f"default ({fetch_hint})")
    if not path.with_suffix(".bin").is_file():
        raise WeightsError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing "
                           "beside it")
    return path


def mirror_sums(base: str) -> dict[str, str] | None:
    """``<base>/SHA256SUMS`` as {relative path: sha256}; None when the mirror serves none (404)
    or cannot be reached (the download that follows then names the failure)."""
    url = f"{base}/{MANIFEST}"
    request = urllib.request.Request(url, headers={"User-Agent": "posestream-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            text = response.read(MANIFEST_MAX_BYTES).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError):
        return None
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*").removeprefix("./")
        if len(digest) == 64 and name:
            sums[name] = digest.lower()
    log.info("%s: checking the mirror's files against its %s (%d entries)", base, MANIFEST,
             len(sums))
    return sums


def fetch_ir(spec: BackboneSpec, variant: str | None = None, *, url_base: str | None = None,
             folder: Path | None = None) -> Path:
    """Download ``variant``'s ``.bin`` and ``.xml`` (files already there are kept) into
    ``folder`` (default ``ir_folder(spec)``), from the published URLs or the mirror ``url_base``
    (default ``$POSESTREAM_WEIGHTS_URL_<NAME>``); the ``.xml``.  WeightsError naming the URL and
    the path to save at when the server cannot be reached, or the URL and file when a check fails.
    """
    from backbones.fetch import mirror_url

    variant = check_variant(spec, variant)
    xml = ir_path(spec, variant, folder)
    if xml.is_file() and not xml.with_suffix(".bin").is_file():
        raise WeightsError(f"{xml}: its weights file {xml.with_suffix('.bin').name} is missing "
                           f"beside it (delete {xml.name} to fetch the published pair)")
    base = mirror_url(spec.name, url_base)
    base = base.rstrip("/") if base else None
    sums = mirror_sums(base) if base else None
    pair = {source.file_name: source for source in spec.sources
            if source.file_name.startswith(f"{variant}/")}
    for suffix in (".bin", ".xml"):
        source = pair[f"{variant}/{spec.ir.model_name}{suffix}"]
        dest = xml.with_suffix(suffix)
        if dest.is_file():
            log.info("%s: %s is already there (%d bytes); delete it to download again", spec.name,
                     dest, dest.stat().st_size)
            continue
        _fetch_file(spec, source, dest, base, sums)
    return xml


def _fetch_file(spec: BackboneSpec, source: WeightSource, dest: Path, base: str | None,
                sums: dict[str, str] | None) -> None:
    url = f"{base}/{source.file_name}" if base else source.url
    if sums is not None:
        if source.file_name not in sums:
            raise WeightsError(f"{base}/{MANIFEST} lists no {source.file_name}; nothing saved at "
                               f"{dest}")
        checks = {"sha256": sums[source.file_name]}
    else:
        checks = {"size": source.size, "sha256": source.sha256, "sha384": source.sha384}
    log.info("%s: fetching %s from %s into %s", spec.name, source.file_name, url, dest)
    try:
        download(url, dest, label=f"{spec.name} {source.file_name}", **checks)
    except DownloadError as exc:
        if exc.offline:
            raise WeightsError(f"{spec.name} IR file {dest} is missing and the server cannot "
                               f"be reached (offline?): {exc}. Download {url} and save it as {dest} (its "
                               f".xml/.bin pair in that folder), or pass --weights FILE.xml"
                               ) from None
        raise WeightsError(f"{spec.name} {source.file_name} not saved at {dest}: {exc}") from None
