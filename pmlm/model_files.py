"""A model as files: ``config.json`` and ``model.safetensors`` (``save_pretrained`` / ``from_pretrained``).

The format of :meth:`pmlm.PMLMModel.save_pretrained`, in a directory::

    config.json          {"model_type": "pmlm", "format_version": 1, "torch_dtype": ..., <PMLMConfig fields>}
    model.safetensors    the weights; the tied softmax matrix is stored once (as the token embedding);
                         its metadata names the files the save wrote (``pmlm_files``)
    tokenizer.json       (when a tokenizer is given) the WordPiece tokenizer
    training.json        (when given) how the model was made: command, seed, data, time, metrics
    <name>               any further files the caller passes (``files``), e.g. a task head and its metadata

Choices, and why:

* safetensors, not pickle: loading a model from elsewhere can never run code; nothing else in the
  directory is executable either.
* Weights may be stored in float16 (``dtype=torch.float16``, half the bytes: the shipped reference
  model) and are loaded into float32.
* Whole or nothing (:func:`write_directory`): a model directory is written into a temporary sibling
  (``.<name>.tmp-<pid>-<random>``) and swapped into place with one atomic ``renameat2(RENAME_EXCHANGE)``
  (Linux; elsewhere two renames), so a save that is killed at any moment leaves the old model or
  the new one, never the new backbone beside the old head. A directory that also holds files no
  save wrote (a run directory: ``checkpoint.pt``, ``metrics.jsonl``) is written in place instead:
  every file first to ``<name>.tmp``, then the old weights removed, the files renamed, the weights
  last; a kill there leaves no weights (loading says so), never a mix. A full or read-only disk is
  one :class:`ModelWriteError` before anything is replaced.
* Which files are a save's own is read from the weights' metadata, so that a later save removes
  them (a classifier's head under a seq2seq model) and never a file it did not write.
* Loading checks everything a wrong directory could get wrong and says what in one sentence: a
  missing or corrupt file, a config with unknown or invalid fields, weights missing, unexpected or
  of another shape than the config implies (naming the keys), weights of an integer or bool dtype,
  NaN or infinite values (a diverged run).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import torch

from pmlm.config import PMLMConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TRAINING_FILE = "training.json"
FORMAT_VERSION = 1
TIED = ("head.embedding.weight",)  # the same tensor as token_embedding.weight: stored once
FILES_KEY, WRITER_KEY = "pmlm_files", "pmlm_writer"  # in the weights' metadata: what the save wrote, and who
# what a save of pmlm wrote before the weights named it (an older pmlm), and a fine-tuned model's files
EXPORT_FILES = (CONFIG_FILE, "modeling_pmlm.py", WEIGHTS_FILE, TOKENIZER_FILE, "tokenizer_config.json",
                "special_tokens_map.json")  # a Hugging Face export's own files (pmlm.hf_export)
LEGACY_FILES = {CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, TRAINING_FILE, "task.json", "head.safetensors"}


class MissingModelFileError(FileNotFoundError, ValueError):
    """A file the model directory should hold is not there (a FileNotFoundError and a ValueError)."""


class ModelWriteError(OSError, ValueError):
    """A model directory could not be written (a read-only or full disk): an OSError and a ValueError,
    so that every command line ends with its one error line."""


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through ``path.tmp`` and a rename (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    _write_synced(tmp, data)
    os.replace(tmp, path)


def _write_synced(path: Path, data: bytes | str) -> None:
    """``data`` to ``path``, flushed to the disk before the call returns (a rename may follow)."""
    try:
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # a partial file is nobody's
        raise


def _sync_dir(path: Path) -> None:
    """Make the renames inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where the system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def check_file_name(name: str) -> None:
    """``name`` must be a plain file name: a path (``../x``, ``a/b``, ``/etc/x``) would write outside
    the model directory, a leading dot is the name of a save in progress."""
    if (not isinstance(name, str) or not name or name in (".", "..") or name.startswith(".")
            or "/" in name or "\\" in name or "\0" in name or (os.altsep and os.altsep in name)):
        raise ValueError(f"files: {name!r} is not a plain file name inside the model directory "
                         "(no paths, no leading dot)")


def _plain(name: str) -> bool:
    try:
        check_file_name(name)
    except ValueError:
        return False
    return True


def written_files(directory: Path) -> tuple[set[str], str | None]:
    """The names a pmlm save wrote into ``directory`` and which writer (``save_pretrained`` or
    ``export_hf``), from the metadata of its weights; an older pmlm's files by their names."""
    from safetensors import safe_open

    weights = directory / WEIGHTS_FILE
    meta: dict = {}
    if weights.is_file():
        try:
            with safe_open(weights, "pt") as f:
                meta = f.metadata() or {}
        except Exception:  # a truncated or foreign file: no record of who wrote it
            meta = {}
    if FILES_KEY in meta:
        try:
            names = {n for n in json.loads(meta[FILES_KEY]) if isinstance(n, str)}
        except (json.JSONDecodeError, TypeError):
            names = set()
        return {n for n in names if _plain(n)} | {WEIGHTS_FILE}, meta.get(WRITER_KEY)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return set(), None
    if not isinstance(config, dict) or config.get("model_type") != "pmlm":
        return set(), None
    if "pmlm_config" in config:  # an older export_hf
        return set(EXPORT_FILES), "export_hf"
    return set(LEGACY_FILES), "save_pretrained"


def _stale_staging(directory: Path) -> list[Path]:
    """Temporary siblings of ``directory`` left by saves that were killed (their process is gone)."""
    stale = []
    for p in directory.parent.glob(f".{directory.name}.*-*-*"):
        kind, _, rest = p.name[len(directory.name) + 2:].partition("-")
        pid = rest.partition("-")[0]
        if kind not in ("tmp", "old") or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            stale.append(p)
        except OSError:
            pass  # alive, someone else's
    return stale


def write_directory(directory: str | Path, files: dict[str, bytes | str], writer: str) -> Path:
    """Write ``files`` (name -> content; the weights, if any, are the commit and go last) as the
    directory ``directory``, whole or nothing.

    The directory is swapped in whole when it is new, empty or holds nothing but the files of an
    earlier save by the same ``writer`` (``save_pretrained``, ``export_hf``); else the files are
    written in place beside the others, which are never touched.
    A read-only or full disk raises :class:`ModelWriteError` with nothing changed.
    """
    out = Path(directory)
    for name in files:
        check_file_name(name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    own, by = written_files(out) if out.is_dir() else (set(), None)
    own = own if by == writer else set()  # another writer's files are not ours to remove
    own_names = own | {n + ".tmp" for n in own | set(files)}
    present = {p.name for p in out.iterdir()} if out.is_dir() else set()
    foreign = present - own_names
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for p in _stale_staging(out):
            shutil.rmtree(p, ignore_errors=True)
        if foreign:
            _write_in_place(out, files, stale=(own - set(files)) | {n for n in present if n.endswith(".tmp")
                                                                     and n in own_names})
        else:
            _write_swapped(out, files)
    except OSError as err:
        if isinstance(err, ModelWriteError):
            raise
        raise ModelWriteError(f"cannot write the model to {out}: {err.strerror or err}; "
                              "nothing there was changed") from None
    return out


def _write_swapped(out: Path, files: dict[str, bytes | str]) -> None:
    """Every file into a new sibling directory, then that directory swapped in for ``out``."""
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    os.mkdir(staging)
    try:
        if out.is_dir():
            os.chmod(staging, out.stat().st_mode & 0o7777)  # the user's permissions, not ours
        for name, data in files.items():
            _write_synced(staging / name, data)
        _sync_dir(staging)
        if not out.exists():
            os.rename(staging, out)  # atomic: nobody ever sees a partial directory at `out`
        elif _exchange(staging, out):  # atomic: `out` is the new model, `staging` now the old one
            pass
        else:  # no atomic exchange here: a kill between the two renames leaves both, whole, as siblings
            old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(out, old)
            try:
                os.rename(staging, out)
            except OSError:
                os.rename(old, out)
                raise
            staging = old
        _sync_dir(out.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_in_place(out: Path, files: dict[str, bytes | str], stale: set[str]) -> None:
    """Beside files the save did not write: all to ``.tmp`` first, then the old weights removed and
    the new ones renamed last, so that no moment shows a loadable mix."""
    written = []
    try:
        for name, data in sorted(files.items(), key=lambda item: item[0] == WEIGHTS_FILE):  # weights last
            _write_synced(out / (name + ".tmp"), data)
            written.append(name)
    except BaseException:
        for name in written:
            (out / (name + ".tmp")).unlink(missing_ok=True)
        raise
    try:
        if WEIGHTS_FILE in files:
            (out / WEIGHTS_FILE).unlink(missing_ok=True)  # from here until the last rename: no model at all
            _sync_dir(out)
        for name in written:
            os.replace(out / (name + ".tmp"), out / name)
    except OSError as err:
        raise ModelWriteError(f"cannot write the model to {out}: {err.strerror or err} while renaming its "
                              "files; it now holds no weights: save it again") from None
    for name in sorted(stale - set(files)):
        (out / name).unlink(missing_ok=True)  # an earlier save's own file (e.g. a head) this one lacks
    _sync_dir(out)


def save_model_files(model: torch.nn.Module, directory: str | Path, *, tokenizer=None,
                     training: dict | None = None, dtype: torch.dtype | None = None,
                     files: dict[str, str | bytes] | None = None) -> Path:
    """Write ``model`` (and optionally its tokenizer, training record and more files) to ``directory``,
    whole or nothing (:func:`write_directory`)."""
    from safetensors.torch import save

    extra = dict(files or {})
    for name in extra:
        check_file_name(name)
    reserved = {CONFIG_FILE, WEIGHTS_FILE} | ({TOKENIZER_FILE} if tokenizer is not None else set()) \
        | ({TRAINING_FILE} if training is not None else set())
    clash = sorted(reserved & set(extra))
    if clash:
        raise ValueError(f"files: {clash} are written by save_pretrained itself; give them another name")
    tensors = {k: v.detach().to("cpu", dtype or v.dtype).contiguous()
               for k, v in model.state_dict().items() if k not in TIED}
    config = {"model_type": "pmlm", "format_version": FORMAT_VERSION,
              "torch_dtype": str(dtype or torch.float32).removeprefix("torch."), **model.config.to_dict()}
    out: dict[str, bytes | str] = {CONFIG_FILE: json.dumps(config, indent=2) + "\n"}
    if tokenizer is not None:
        out[TOKENIZER_FILE] = tokenizer.to_str()
    if training is not None:
        out[TRAINING_FILE] = json.dumps(training, indent=2) + "\n"
    out.update(extra)
    names = sorted([*out, WEIGHTS_FILE])
    out[WEIGHTS_FILE] = save(tensors, metadata={"format": "pt", "model_type": "pmlm",  # last: the commit
                                                FILES_KEY: json.dumps(names), WRITER_KEY: "save_pretrained"})
    return write_directory(directory, out, "save_pretrained")


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MissingModelFileError(f"{path} is missing: {what}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); the file is corrupt") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object; the file is corrupt")
    return data


def read_config(directory: str | Path) -> PMLMConfig:
    """The :class:`PMLMConfig` of a model directory, with a clear error for a bad ``config.json``."""
    path = Path(directory) / CONFIG_FILE
    hint = "not a directory written by save_pretrained (config.json, model.safetensors)"
    data = read_json(path, hint)
    if "pmlm_config" in data or "auto_map" in data:
        raise ValueError(f"{path} is a Hugging Face export (pmlm.export_hf): load it with pmlm.import_hf")
    if data.get("model_type", "pmlm") != "pmlm":
        raise ValueError(f"{path} describes a {data['model_type']!r} model, not a pmlm one "
                         "(a Hugging Face export? load it with pmlm.import_hf)")
    fields_ = {k: v for k, v in data.items() if k not in ("model_type", "format_version", "torch_dtype")}
    try:
        return PMLMConfig.from_dict(fields_)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} holds an invalid model config: {err}") from None


def read_tensors(path: Path, missing: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, as stored; ``missing`` says what its absence means."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise MissingModelFileError(f"{path} is missing: {missing}")
    try:
        return load_file(path)
    except Exception as err:  # truncated header, garbage bytes: one message
        raise ValueError(f"{path} cannot be read (corrupt or truncated safetensors file): "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``, in float32; a clear error for a missing or corrupt file."""
    directory = Path(directory)
    hint = "the directory holds no weights" + (  # a run directory between the two moments of its final save
        " (a run's checkpoint.pt beside it loads with pmlm.checkpoint.load_pretrained)"
        if (directory / "checkpoint.pt").is_file() else "")
    tensors = read_tensors(directory / WEIGHTS_FILE, hint)
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load ``tensors`` into ``model``, naming every missing, unexpected or mis-shaped key."""
    expected = {k: v.shape for k, v in model.state_dict().items() if k not in TIED}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k}: file {tuple(tensors[k].shape)} vs config {tuple(expected[k])}"
              for k in sorted(set(expected) & set(tensors)) if tensors[k].shape != expected[k]]
    problems = ([f"missing keys {missing}"] if missing else []) + \
        ([f"unexpected keys {unexpected}"] if unexpected else []) + \
        ([f"shapes that do not fit the config: {'; '.join(shapes)}"] if shapes else [])
    if problems:
        raise ValueError(f"the weights in {where} do not fit its config.json: " + "; ".join(problems))
    check_weight_values(model, tensors, where)
    model.load_state_dict(tensors, strict=False)  # the tied matrix comes with token_embedding.weight


def check_weight_values(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Refuse weights that no training writes: an integer, bool or complex tensor where the model
    has a floating one (load_state_dict would cast it silently), or NaN / inf values (a diverged run)."""
    own = model.state_dict()
    dtypes = [f"{k} ({str(t.dtype).removeprefix('torch.')})" for k, t in sorted(tensors.items())
              if k in own and own[k].is_floating_point() and not t.is_floating_point()]
    if dtypes:
        raise ValueError(f"the weights in {where} are not floating point: {', '.join(dtypes[:5])}"
                         f"{f' and {len(dtypes) - 5} more' if len(dtypes) > 5 else ''}; a model's weights are "
                         "float32, float16 or bfloat16: the file was not written by save_pretrained")
    bad = [k for k, t in sorted(tensors.items()) if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"the weights in {where} hold NaN or infinite values ({', '.join(bad[:5])}"
                         f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}): the run that saved them had "
                         "diverged; train again with a lower learning rate")
