"""The on-disk kernel cache.

An entry is a directory `<cache_dir>/<key>/` holding
    kernels.py    the generated source (executed from the very bytes checked below)
    entry.json    the format, the key, what the key was made of, the SHA-256 of kernels.py
    __pycache__/  Numba's machine code for it (.nbi index, .nbc data: pickles Numba reads)
    numba.json    the SHA-256 of each file in __pycache__, written after Numba writes them
The key hashes the .meta source text, the kernel it is for (function, kind,
differentiated arguments, batch layout), the dtype, and the metacc and Numba
versions: a kernel is never served for anything else.

What is checked before anything is used:
- entry.json must name this format and this key and describe this kernel,
  and kernels.py must match its hash, or the entry is discarded and rebuilt
  (one CacheWarning naming it);
- each Numba file must match its hash in numba.json before Numba opens it:
  a damaged file is removed and the kernel compiled again (one CacheWarning),
  a file numba.json does not list (a run that stopped before writing it) is
  removed quietly; any error while Numba loads a verified file, or a loaded
  overload for another signature, also means: compile again, with a warning.
  Numba's own .nbi/.nbc format is pickle; the hashes make sure it reads only
  what a metacc process wrote for this entry, not that a writer was honest.
  The cache directory must be writable by you alone: kernels.py is Python
  code that runs, and whoever can write it can write a matching hash.

Nothing in an entry depends on where the cache is: the module is named after
the key and Numba's source stamp is the hash of kernels.py, so a cache moved
or copied elsewhere (METACC_CACHE_DIR pointing at the new place) is used as is.

Writes: a new entry is assembled in a temporary directory and renamed into
place, a broken one is renamed aside before it is deleted, and every file is
replaced by a rename: processes sharing a cache see no entry or a whole one.
Numba's loads and saves of one entry are serialised by a file lock on it.
Only paths inside the cache directory are ever written or removed.

When the cache cannot be used (no space, read-only, no permission, a file
where a directory should be) kernels are compiled in memory instead, with one
warning saying why and what to do; nothing then is saved for the next run.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import linecache
import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path
from types import ModuleType

import numba
from numba.core import caching, sigutils
from numba.core.dispatcher import Dispatcher

from metacc.version import PACKAGE_DIR, __version__

try:
    import fcntl
except ImportError:                 # Windows: no advisory locks; the renames still keep files whole
    fcntl = None

FORMAT = 2                          # of entry.json; 1 had no format, key or numba.json


def default_dir() -> Path:
    env = os.environ.get("METACC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "metacc"


_BUILD: str | None = None


def compiler_build() -> str:
    """metacc's version plus a hash of its own code: a kernel built by a changed
    compiler (a development checkout between releases) is never served."""
    global _BUILD
    if _BUILD is None:
        h = hashlib.sha256()
        here = Path(__file__).parent
        # everything that decides a kernel's code: the compiler (the helpers that
        # kernels call included), the runtime's kernel kinds, and how a cached kernel is loaded
        files = sorted(PACKAGE_DIR.rglob("*.py")) + [
            here / "kernel.py", here / "cache.py", here / "serial.py"]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _BUILD = f"{__version__}+{h.hexdigest()[:12]}"
    return _BUILD


def entry_key(source_text: str, kernel: str, dtype: str) -> tuple[str, dict]:
    parts = {"source_sha256": hashlib.sha256(source_text.encode()).hexdigest(), "kernel": kernel,
             "dtype": dtype, "metacc": compiler_build(), "numba": numba.__version__}
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24], parts


class CacheWarning(UserWarning):
    """A cache entry was broken and has been rebuilt, or the cache cannot be used
    (kernels are then compiled in memory)."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_OWN = (str(PACKAGE_DIR), str(Path(__file__).parent), str(Path(numba.__file__).parent))


def warn(message: str) -> None:
    """A CacheWarning attributed to the user's own line (the first frame outside
    metacc and Numba), so the default filter shows it once per place."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(_OWN)
                                 or frame.f_globals.get("__name__", "").startswith("metacc_kernels_")):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, CacheWarning, stacklevel=level)


# --- a cache that cannot be used -------------------------------------------

_OFF: dict[str, str] = {}           # a cache root or entry directory -> why this process does not use it


def describe(err: OSError) -> str:
    why = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
           errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EEXIST: "a file is in the way", errno.ENOTDIR: "a file is in the way",
           errno.EDQUOT: "the disk quota is exceeded"}.get(err.errno, err.strerror or type(err).__name__)
    return f"{why}: {err.filename}" if err.filename else why


def off(path: Path, why: str, whole: bool) -> None:
    """Stop using `path` (the whole cache root, or one entry) in this process, with one warning."""
    if str(path) in _OFF:
        return
    _OFF[str(path)] = why
    if whole:
        warn(f"metacc: the kernel cache {path} cannot be used ({why}); kernels are compiled in memory "
             "for this process and nothing is saved for the next run. Set METACC_CACHE_DIR (or "
             "compile(..., cache_dir=...)) to a writable directory with free space.")
    else:
        warn(f"metacc: cache entry {path} cannot be used ({why}); this kernel is compiled in memory. "
             f"Remove {path}, or set METACC_CACHE_DIR to another directory.")


def _root_usable(root: Path) -> bool:
    if str(root) in _OFF:
        return False
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        off(root, describe(err), whole=True)
        return False
    return True


# --- entries ----------------------------------------------------------------

class _Blocked(Exception):
    """The entry's own path cannot take a directory (a file, a link, no access)."""


class Entry:
    def __init__(self, root: Path, key: str, parts: dict):
        self.root, self.key = root, key
        self.dir = root / key
        self.parts = parts
        self.kernels = self.dir / "kernels.py"
        self.meta = self.dir / "entry.json"
        self.pycache = self.dir / "__pycache__"
        self.manifest = self.dir / "numba.json"

    # reading
    def load(self) -> ModuleType | None:
        """The cached module, or None when there is no usable entry (nothing there,
        or a damaged entry, just discarded). _Blocked when the entry cannot be read."""
        if self.dir.is_symlink():
            raise _Blocked("a symbolic link is in the way")
        try:
            raw = self.meta.read_bytes()
        except FileNotFoundError:
            # entries appear whole, by one rename: a directory without entry.json is damage
            if self.dir.is_dir():
                self.discard("entry.json is missing")
            return None
        except (PermissionError, NotADirectoryError) as err:
            raise _Blocked(describe(err)) from None
        except Exception as err:  # noqa: BLE001 - e.g. entry.json is a directory: damage
            self.discard(f"{type(err).__name__}: {err}")
            return None
        try:
            text = self._check(raw)
            return load_module(text, self.key, self)
        except PermissionError as err:
            raise _Blocked(describe(err)) from None
        except Exception as err:  # noqa: BLE001 - any damage means: rebuild
            self.discard(f"{type(err).__name__}: {err}")
            return None

    def _check(self, raw: bytes) -> str:
        meta = json.loads(raw)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("entry.json is not in this metacc's format")
        if meta.get("key") != self.key or meta.get("parts") != self.parts:
            raise ValueError("entry.json does not describe this kernel")
        data = self.kernels.read_bytes()
        if meta.get("kernels_sha256") != _sha(data):
            raise ValueError("kernels.py does not match its recorded hash")
        return data.decode()

    # writing
    def store(self, source: str) -> ModuleType:
        """Write the entry (whole, by one rename) and load it. _Blocked when the
        entry's path is taken; OSError when the cache cannot be written."""
        data = source.encode()
        meta = {"format": FORMAT, "key": self.key, "parts": self.parts, "kernels_sha256": _sha(data)}
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=f".tmp-{self.key}-"))
        try:
            _write(tmp / "kernels.py", data)
            _write(tmp / "entry.json", json.dumps(meta, indent=1, sort_keys=True).encode())
            for attempt in range(2):
                try:
                    os.rename(tmp, self.dir)
                    break
                except OSError as err:
                    if err.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not self.dir.is_dir() \
                            or self.dir.is_symlink():
                        raise _Blocked(describe(err)) from None
                # another process stored this entry first: use it if whole, else replace it
                try:
                    if self._check(self.meta.read_bytes()) == source:
                        break
                except Exception:  # noqa: BLE001 - damaged: set aside below
                    pass
                if attempt:
                    raise _Blocked("the entry keeps changing under this process")
                self._remove()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return load_module(source, self.key, self)

    def discard(self, why: str) -> None:
        warn(f"metacc: cache entry {self.dir} is broken ({why}); rebuilding it")
        self._remove()

    def _remove(self) -> None:
        """Take the entry out of place by one rename (readers see it whole or not at
        all), then delete it. Only ever a directory at the entry's own path."""
        if self.dir.is_symlink() or not self.dir.is_dir():
            return
        trash = self.root / f".trash-{self.key}-{uuid.uuid4().hex[:12]}"
        try:
            os.rename(self.dir, trash)
        except OSError:
            return                       # gone already, or not writable (store will say so)
        shutil.rmtree(trash, ignore_errors=True)

    # Numba's files
    @contextlib.contextmanager
    def locked(self):
        """An exclusive lock on the entry, across processes (none if it cannot be made)."""
        fd = None
        if fcntl is not None:
            try:
                fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                if fd is not None:
                    os.close(fd)
                fd = None
        try:
            yield
        finally:
            if fd is not None:
                os.close(fd)             # closing releases the lock

    def _numba_files(self, base: str) -> list[str]:
        try:
            names = os.listdir(self.pycache)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.startswith(base + ".") and n.endswith((".nbi", ".nbc")))

    def _read_manifest(self) -> dict:
        try:
            got = json.loads(self.manifest.read_bytes())
            files = got.get("files") if isinstance(got, dict) and got.get("key") == self.key else None
            if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
                return files
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - unreadable: nothing is verified, so nothing is loaded
            pass
        return {}

    def _write_manifest(self, files: dict) -> None:
        _write_atomic(self.manifest, json.dumps({"key": self.key, "files": files}, indent=1,
                                                sort_keys=True).encode())

    def verify_numba(self, base: str) -> bool:
        """True when every Numba file of this function matches numba.json; otherwise
        remove them all (so Numba compiles afresh) and say so if any was damaged."""
        names = self._numba_files(base)
        if not names:
            return True
        files = self._read_manifest()
        bad = []
        for n in names:
            try:
                if files.get(n) != _sha((self.pycache / n).read_bytes()):
                    bad.append(n)
            except FileNotFoundError:
                pass
        if not bad:
            return True
        damaged = [n for n in bad if n in files]
        if damaged:
            warn(f"metacc: cache entry {self.dir} is broken (Numba file {', '.join(damaged)} does not "
                 "match its recorded hash); compiling the kernel again")
        self.drop_numba(base, files)
        return False

    def drop_numba(self, base: str, files: dict | None = None) -> None:
        files = self._read_manifest() if files is None else files
        for n in self._numba_files(base):
            with contextlib.suppress(OSError):
                (self.pycache / n).unlink()
            files.pop(n, None)
        with contextlib.suppress(OSError):
            self._write_manifest(files)

    def record_numba(self, base: str) -> None:
        """Hash this function's Numba files (just written by this process, under the lock)."""
        files = {n: h for n, h in self._read_manifest().items() if not n.startswith(base + ".")}
        for n in self._numba_files(base):
            with contextlib.suppress(FileNotFoundError):
                files[n] = _sha((self.pycache / n).read_bytes())
        self._write_manifest(files)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:12]}")
    try:
        _write(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- loading a module, with Numba's cache inside the entry --------------------

class _EntryLocator(caching._CacheLocator):
    """Numba's files go to the entry's __pycache__, whatever NUMBA_CACHE_DIR says,
    and are stamped with the hash of kernels.py (not its path or mtime)."""

    def __init__(self, entry: Entry, stamp: str, py_func):
        self._entry, self._stamp = entry, stamp
        self._py_file = str(entry.kernels)
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):
        # never the entry itself: if it was replaced meanwhile, there is nothing to save into
        with contextlib.suppress(FileExistsError):
            os.mkdir(self._entry.pycache)

    def get_cache_path(self):
        return str(self._entry.pycache)

    def get_source_stamp(self):
        return self._stamp

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return None                      # made only by _EntryImpl


class _EntryImpl(caching.CompileResultCacheImpl):
    def __init__(self, py_func):         # the entry is known: no locator search
        entry, stamp = py_func.__globals__["__metacc_entry__"]
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = _EntryLocator(entry, stamp, py_func)
        self._filename_base = self.get_filename_base(f"kernels.{py_func.__qualname__}",
                                                     getattr(sys, "abiflags", ""))


class EntryCache(caching.FunctionCache):
    """Numba's per-function cache, checked: files are verified before Numba reads
    them, any failure to load means compile again, and a failure to save means
    the cache is not used (the kernel still runs)."""
    _impl_class = _EntryImpl

    def __init__(self, py_func, entry: Entry):
        self._entry = entry
        super().__init__(py_func)

    def load_overload(self, sig, target_context):
        base = self._impl.filename_base
        try:
            with self._entry.locked():
                if not self._entry.verify_numba(base):
                    return None
                cres = super().load_overload(sig, target_context)
            if cres is not None and tuple(cres.signature.args) != tuple(sigutils.normalize_signature(sig)[0]):
                raise ValueError(f"the cached overload is for {cres.signature}, not {sig}")
            return cres
        except Exception as err:  # noqa: BLE001 - any failure to load: compile again
            warn(f"metacc: cache entry {self._entry.dir} is broken (loading Numba's cached code: "
                 f"{type(err).__name__}: {err}); compiling the kernel again")
            with contextlib.suppress(Exception):
                with self._entry.locked():
                    self._entry.drop_numba(base)
            return None

    def save_overload(self, sig, data):
        try:
            with self._entry.locked():
                super().save_overload(sig, data)
                self._entry.record_numba(self._impl.filename_base)
        except FileNotFoundError:
            pass                         # the entry was replaced meanwhile: nothing to save into
        except OSError as err:
            off(self._entry.root, describe(err), whole=True)
        except Exception as err:  # noqa: BLE001 - saving is an optimisation; the kernel runs
            warn(f"metacc: the compiled kernel could not be saved in {self._entry.dir} "
                 f"({type(err).__name__}: {err}); it is compiled again next run")


def load_module(text: str, key: str, entry: Entry | None) -> ModuleType:
    """Execute kernels source as a module: from the checked text itself (never a
    re-read file or a .pyc), named after the key (so nothing depends on the cache's
    path). With an entry, Numba caches into it through EntryCache; without, the
    kernels are compiled in memory."""
    name = f"metacc_kernels_{key}"
    filename = str(entry.kernels) if entry is not None else f"<metacc kernels {key}>"
    # the generated module says CACHE = True for use on its own; caching is set up here
    code_text = text.replace("\nCACHE = True\n", "\nCACHE = False\n", 1)
    code = compile(code_text, filename, "exec", dont_inherit=True)
    mod = ModuleType(name)
    mod.__file__ = filename
    if entry is not None:
        mod.__dict__["__metacc_entry__"] = (entry, _sha(text.encode()))
    else:
        # tracebacks and Numba's error messages can still show the source
        linecache.cache[filename] = (len(code_text), None, code_text.splitlines(True), filename)
    sys.modules[name] = mod              # Numba finds a cached function's globals by module name
    try:
        exec(code, mod.__dict__)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    if entry is not None:
        for value in list(vars(mod).values()):
            value = getattr(value, "metacc_kernel", value)   # a kernel waiting for its nests (runtime/nests.py)
            if isinstance(value, Dispatcher) and getattr(value.py_func, "__globals__", None) is mod.__dict__:
                value._cache = EntryCache(value.py_func, entry)
    return mod


def open_module(root: Path, key: str, parts: dict, make_source) -> tuple[ModuleType, bool, Entry | None]:
    """The kernels module for `key`: (module, built in this process, its entry or None
    when compiled in memory). make_source() generates the source on a miss."""
    root = Path(os.path.abspath(root))
    entry = Entry(root, key, parts)
    source = None
    if _root_usable(root) and str(entry.dir) not in _OFF:
        try:
            mod = entry.load()
            if mod is not None:
                return mod, False, entry
            source = make_source()
            return entry.store(source), True, entry
        except _Blocked as err:
            off(entry.dir, str(err), whole=False)
        except OSError as err:
            off(root, describe(err), whole=True)
    return load_module(source if source is not None else make_source(), key, None), True, None
