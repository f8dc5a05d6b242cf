#!/usr/bin/python3
"""check_docs.py: extracts every fenced code block of the given Markdown files and checks each one
in a way that can fail, so that an example in the docs can never crash or rot.

The info string of a fence is its language, then optional words (docs/README.md, "Code blocks in
these docs", is the convention for writers):

  c, cpp     a whole translation unit. One that defines cwsgi_app_entry (or uses CWSGI_APP) is an
             app: built like cwsgi_add_app builds one, checked to export only cwsgi_app_entry,
             loaded through the test host and sent a GET, and checked by cwsgi-serve --check.
             One with main() is a program: linked with the test host and run, with the path of
             the last app built from the same file as its argument; it must exit 0. Anything
             else is compiled.
  cmake      a whole CMakeLists.txt: configured, built and its tests run against the installed
             package, in a folder holding the file= blocks of the same Markdown file.
  meson      a whole meson.build: the same, with meson and the installed cwsgi.pc.
  sh, bash   checked with `bash -n`; with the word `run`, also run (bash -eu -o pipefail) in
             that folder with the installed package on PATH and PKG_CONFIG_PATH (not on
             LD_LIBRARY_PATH: a test program linked by hand needs its -rpath).
  toml       parsed with tomllib.      ini, systemd  parsed with configparser.
  json       parsed.                   python        compiled (py_compile).
  anything else (nginx, text, none)    not checked.

Words after the language: `fragment` (a piece of code or data that is not whole: not checked,
only counted), `file=NAME` (save the block as NAME in the Markdown file's folder, before any
block of that file is checked, for its cmake, meson and run blocks), `run` (sh only),
`env=KEY=VALUE` (an app: the environment variable its init reads, set when it is loaded and
checked; the app runs in the Markdown file's folder, so VALUE may name a file= block).
Two checks run at a time (--jobs): each page's cmake and meson blocks on their own (each in a copy of
the page's file= blocks), and the page's other blocks in order, the costliest first.

Usage:
  check_docs.py --cmake-install BUILD_DIR [options] FILE.md|DIR...
      install BUILD_DIR into a scratch prefix and check everything against it, as a user of
      the package would
  check_docs.py --include DIR --testhost LIB.so [--serve BIN] [options] FILE.md|DIR...
      check against a build tree: C and C++ blocks, and every block that needs no package;
      cmake, meson and run blocks are then reported as not checked here
A DIR stands for its *.md files, found at run time. Options:
  --sanitize         build with ASan and UBSan, as the tree was; cmake, meson and run blocks
                     are left to the plain build
  --expect-failures  every checked block must fail (the checker's own test, broken.md)
  --work DIR         use DIR (emptied first, if an earlier run made it) as the scratch folder: with the same DIR each run,
                     every path a compiler sees is the same from run to run, so a compiler
                     launcher such as ccache finds its cache (CC="ccache cc" also makes the
                     cmake blocks use it)
  --keep             keep the scratch folder and say where it is
  --jobs N           checks at a time (default 2: the machine CI runs on has two cores)
"""

import argparse
import configparser
import glob
import json
import os
import py_compile
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`]*)$")
C_LANGS = {"c": "c", "cpp": "cpp", "c++": "cpp", "cc": "cpp", "cxx": "cpp"}
SH_LANGS = {"sh", "bash", "shell"}
INI_LANGS = {"ini", "systemd"}
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
TIMEOUT = 120  # seconds for any one command; the whole test stays well under its CTest timeout


class Block:
    """One fenced block: where it is, its language, its words and its text."""

    def __init__(self, path, line, info, text):
        self.path = path
        self.line = line
        words = info.split()
        self.lang = words[0].lower() if words else ""
        self.words = set(w for w in words[1:] if "=" not in w)
        self.attrs = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        self.text = text

    def where(self):
        return f"{os.path.relpath(self.path)}:{self.line}"


def parse_blocks(path):
    """The fenced blocks of a Markdown file, in order; an unclosed fence is an error."""
    blocks = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3).strip()
        start = i + 1
        body = []
        i += 1
        closed = False
        while i < len(lines):
            line = lines[i]
            stripped = line.lstrip(" ")
            if stripped.startswith(fence[0] * len(fence)) and stripped.strip(fence[0]).strip() == "" \
                    and len(line) - len(stripped) <= 3:
                closed = True
                break
            # Content lines lose up to the fence's indentation (CommonMark).
            n = 0
            while n < indent and n < len(line) and line[n] == " ":
                n += 1
            body.append(line[n:])
            i += 1
        if not closed:
            raise SystemExit(f"{path}:{start}: a code fence is never closed")
        blocks.append(Block(path, start, info, "\n".join(body) + "\n"))
        i += 1
    return blocks


class Checker:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.failures = []
        self.counts = {}
        self.lock = threading.Lock()  # pages are checked two at a time (see main)
        # CC and CXX may be a command with words ("ccache cc").
        self.cc = shlex.split(os.environ.get("CC") or "cc")
        self.cxx = shlex.split(os.environ.get("CXX") or "c++")
        self.flags = ["-Wall", "-Wextra", "-Werror", "-g0", "-O0"] + (SANITIZE if args.sanitize else [])
        self.env = dict(os.environ)
        self.prefix = None
        if args.cmake_install:
            self.prefix = os.path.join(work, "prefix")
            self.run_cmd(["cmake", "--install", args.cmake_install, "--prefix", self.prefix], "install")
            self.include = os.path.join(self.prefix, "include")
            libs = glob.glob(os.path.join(self.prefix, "lib*", "**", "libcwsgi-testhost.so"), recursive=True)
            if not libs:
                raise SystemExit("the install has no libcwsgi-testhost.so")
            self.testhost = libs[0]
            self.serve = os.path.join(self.prefix, "bin", "cwsgi-serve")
            pcdirs = sorted(set(os.path.dirname(p) for p in glob.glob(
                os.path.join(self.prefix, "lib*", "**", "cwsgi.pc"), recursive=True)))
            self.env["PATH"] = os.path.join(self.prefix, "bin") + os.pathsep + self.env.get("PATH", "")
            self.env["PKG_CONFIG_PATH"] = os.pathsep.join(pcdirs + [self.env.get("PKG_CONFIG_PATH", "")])
            self.env["CMAKE_PREFIX_PATH"] = self.prefix
        else:
            self.include = args.include
            self.testhost = args.testhost
            self.serve = args.serve
        self.libdir = os.path.dirname(os.path.abspath(self.testhost))
        self.loader = self.build_loader()

    # ---- helpers -------------------------------------------------------------------------------

    def run_cmd(self, cmd, what, cwd=None, env=None):
        """Runs cmd; on failure raises with its output. Returns stdout."""
        try:
            p = subprocess.run(cmd, cwd=cwd, env=env or self.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT, text=True, errors="replace")
        except subprocess.TimeoutExpired:
            raise CheckError(f"{what}: timed out after {TIMEOUT} s: {' '.join(cmd)}")
        if p.returncode != 0:
            tail = "\n".join(p.stdout.strip().split("\n")[-40:])
            raise CheckError(f"{what}: exit {p.returncode}: {' '.join(cmd)}\n{tail}")
        return p.stdout

    def count(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def say(self, line):
        with self.lock:
            print(line, flush=True)

    def needs_package(self, block, kind):
        if self.prefix is None or self.args.sanitize:
            why = "the sanitized build" if self.args.sanitize else "a build-tree check"
            self.say(f"  {block.where()}: {kind} not checked in {why} (the CMake build's plain docs test does)")
            self.count(f"{kind} (not checked here)")
            return True
        return False

    def compiler(self, kind):
        return self.cc + ["-std=c11"] if kind == "c" else self.cxx + ["-std=c++20"]

    def build_loader(self):
        """The generic app loader (load_app.c), built once, before any page is checked."""
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_app.c")
        loader = os.path.join(self.work, "load_app")
        self.run_cmd([*self.cc, "-std=c11", *self.flags, "-I", self.include, src, "-o", loader,
                      "-L", self.libdir, "-lcwsgi-testhost", f"-Wl,-rpath,{self.libdir}"], "build load_app")
        return loader

    # ---- per language --------------------------------------------------------------------------

    def check_c(self, block, doc):
        kind = C_LANGS[block.lang]
        if "fragment" in block.words:
            self.count(f"{kind} fragment (not built)")
            return False
        name = block.attrs.get("file") or f"block-{block.line}.{'c' if kind == 'c' else 'cc'}"
        src = os.path.join(doc.dir, name)
        stem = os.path.splitext(src)[0]
        is_app = "cwsgi_app_entry" in block.text or re.search(r"\bCWSGI_APP\s*\(", block.text)
        is_main = re.search(r"\bint\s+main\s*\(", block.text)
        base = self.compiler(kind) + self.flags + ["-I", self.include]
        if is_app:
            so = stem + ".so"
            map_file = os.path.join(self.include, "..", "share", "cwsgi", "app-exports.map") \
                if self.prefix else os.path.join(self.args.source, "cmake", "app-exports.map")
            # Compiled and linked apart, so that a compiler launcher can cache the compile.
            self.run_cmd(base + ["-fPIC", "-fvisibility=hidden", "-c", src, "-o", stem + ".o"], f"build app {name}")
            self.run_cmd(base + ["-shared", "-Wl,--no-undefined", f"-Wl,--version-script={map_file}",
                                 stem + ".o", "-o", so], f"link app {name}")
            out = self.run_cmd(["nm", "-D", "--defined-only", so], "nm")
            exported = sorted(l.split()[-1] for l in out.splitlines() if l.strip())
            if exported != ["cwsgi_app_entry"]:
                raise CheckError(f"{name}: exports {exported}, not only cwsgi_app_entry (ABI-LOAD-1)")
            env = dict(self.env)
            if "env" in block.attrs:  # env=KEY=VALUE: the app's configuration (cwsgi-serve -e)
                key, _, value = block.attrs["env"].partition("=")
                env[key] = value
            self.run_cmd([self.loader, so], f"load {name} through the test host", cwd=doc.dir, env=env)
            if self.serve:
                out = self.run_cmd([self.serve, "--check", so], f"cwsgi-serve --check {name}", cwd=doc.dir, env=env)
                if "result:         ok" not in out:
                    raise CheckError(f"cwsgi-serve --check {name} did not say ok:\n{out}")
            doc.last_app = so
            self.count(f"{kind} app (built, loaded, checked)")
        elif is_main:
            exe = stem
            self.run_cmd(base + ["-c", src, "-o", stem + ".o"], f"build program {name}")
            self.run_cmd(base + [stem + ".o", "-o", exe, "-L", self.libdir, "-lcwsgi-testhost",
                                 f"-Wl,-rpath,{self.libdir}"], f"link program {name}")
            argv = [exe] + ([doc.last_app] if doc.last_app else [])
            self.run_cmd(argv, f"run {name}" + (f" {os.path.basename(doc.last_app)}" if doc.last_app else ""),
                         cwd=doc.dir)
            self.count(f"{kind} program (built, run)")
        else:
            self.run_cmd(base + ["-c", src, "-o", stem + ".o"], f"compile {name}")
            self.count(f"{kind} translation unit (compiled)")

    def project_dir(self, block, doc, build_file):
        """A copy of the page's file= blocks with the block as its build file."""
        proj = os.path.join(self.work, f"proj-{doc.index}-{block.line}")
        shutil.copytree(doc.sources, proj)
        with open(os.path.join(proj, build_file), "w", encoding="utf-8") as f:
            f.write(block.text)
        return proj

    def check_cmake(self, block, doc):
        if "fragment" in block.words:
            self.count("cmake fragment (not built)")
            return False
        if self.needs_package(block, "cmake"):
            return False
        proj = self.project_dir(block, doc, "CMakeLists.txt")
        build = os.path.join(proj, "build")
        flags = "-Wall -Wextra -Werror"
        launcher = []
        if len(self.cc) > 1 and os.path.basename(self.cc[0]) == "ccache":
            launcher = ["-DCMAKE_C_COMPILER_LAUNCHER=ccache", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"]
        self.run_cmd(["cmake", "-S", proj, "-B", build, f"-DCMAKE_PREFIX_PATH={self.prefix}",
                      f"-DCMAKE_C_FLAGS={flags}", f"-DCMAKE_CXX_FLAGS={flags}", *launcher], "cmake configure")
        self.run_cmd(["cmake", "--build", build], "cmake build")
        out = self.run_cmd(["ctest", "--test-dir", build, "--output-on-failure", "--timeout", "60"], "ctest")
        self.check_modules_export_only_entry(build)
        self.count("cmake (configured, built, tested)" if "tests passed" in out else "cmake (configured, built)")

    def check_meson(self, block, doc):
        if "fragment" in block.words:
            self.count("meson fragment (not built)")
            return False
        if self.needs_package(block, "meson"):
            return False
        proj = self.project_dir(block, doc, "meson.build")
        build = os.path.join(proj, "builddir")
        self.run_cmd(["meson", "setup", build, proj, "-Dwerror=true", "-Dwarning_level=2"], "meson setup")
        self.run_cmd(["meson", "compile", "-C", build], "meson compile")
        self.run_cmd(["meson", "test", "-C", build, "--print-errorlogs"], "meson test")
        self.check_modules_export_only_entry(build)
        self.count("meson (set up, built, tested)")

    def check_modules_export_only_entry(self, build):
        for so in glob.glob(os.path.join(build, "**", "*.so"), recursive=True):
            out = self.run_cmd(["nm", "-D", "--defined-only", so], "nm")
            exported = sorted(l.split()[-1] for l in out.splitlines() if l.strip())
            if exported != ["cwsgi_app_entry"]:
                raise CheckError(f"{so}: exports {exported}, not only cwsgi_app_entry (ABI-LOAD-1)")

    def check_sh(self, block, doc):
        script = os.path.join(self.work, f"sh-{doc.index}-{block.line}.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write(block.text)
        self.run_cmd(["bash", "-n", script], "bash -n")
        if "run" not in block.words:
            self.count("sh (bash -n)")
            return
        if self.needs_package(block, "sh run"):
            return False
        self.run_cmd(["bash", "-euo", "pipefail", script], "run the sh block", cwd=doc.dir)
        self.count("sh (bash -n, run)")

    def check_data(self, block, doc):
        try:
            if block.lang == "toml":
                tomllib.loads(block.text)
            elif block.lang in INI_LANGS:
                configparser.RawConfigParser(strict=False, interpolation=None).read_string(block.text)
            elif block.lang == "json":
                json.loads(block.text)
        except Exception as e:  # each parser has its own error type; all mean the same here
            raise CheckError(f"{block.lang} does not parse: {e}")
        self.count(f"{block.lang} (parsed)")

    def check_python(self, block, doc):
        name = block.attrs.get("file") or f"block-{block.line}.py"
        src = os.path.join(doc.dir, name)
        try:
            py_compile.compile(src, cfile=os.path.join(self.work, name + "c"), doraise=True)
        except py_compile.PyCompileError as e:
            raise CheckError(f"python does not compile: {e.msg}")
        self.count("python (compiled)")

    def check(self, block, doc):
        lang = block.lang
        if "fragment" in block.words and lang not in C_LANGS and lang not in ("cmake", "meson"):
            self.count(f"{lang} fragment (not checked)")
            return False
        if lang in C_LANGS:
            if "file" not in block.attrs:
                ext = "c" if C_LANGS[lang] == "c" else "cc"
                with open(os.path.join(doc.dir, f"block-{block.line}.{ext}"), "w", encoding="utf-8") as f:
                    f.write(block.text)
            checked = self.check_c(block, doc)
        elif lang == "cmake":
            checked = self.check_cmake(block, doc)
        elif lang == "meson":
            checked = self.check_meson(block, doc)
        elif lang in SH_LANGS:
            checked = self.check_sh(block, doc)
        elif lang in ("toml", "json") or lang in INI_LANGS:
            checked = self.check_data(block, doc)
        elif lang in ("python", "py"):
            if "file" not in block.attrs:
                with open(os.path.join(doc.dir, f"block-{block.line}.py"), "w", encoding="utf-8") as f:
                    f.write(block.text)
            checked = self.check_python(block, doc)
        else:
            self.count(f"{lang or 'plain'} (not checked)")
            checked = False
        # Each check_* returns False when it did not check the block, None (or True) when it did.
        return checked is not False


class CheckError(Exception):
    pass


class Doc:
    def __init__(self, path, work, index):
        self.path = path
        self.index = index
        self.dir = os.path.join(work, f"doc-{index}-{os.path.splitext(os.path.basename(path))[0]}")
        os.makedirs(self.dir)
        # The file= blocks alone, copied for each cmake and meson block (see plan_page).
        self.sources = os.path.join(work, f"src-{index}")
        self.last_app = None


BUILD_LANGS = ("cmake", "meson")


def cost(block, blocks):
    """A rough guess of a block's seconds, to start the slowest checks first: C++ and a JSON
    library cost most to compile; a cmake or meson block configures, then builds the page's
    sources again."""
    if "fragment" in block.words:
        return 0
    if block.lang in C_LANGS:
        return (3 if C_LANGS[block.lang] == "cpp" else 1) + (6 if "nlohmann" in block.text else 0)
    if block.lang in BUILD_LANGS:
        return 3 + sum(cost(b, blocks) for b in blocks if "file" in b.attrs and b.lang in C_LANGS)
    if block.lang in SH_LANGS and "run" in block.words:
        return 1 + (3 if "c++" in block.text else 0)
    return 0


class Task:
    """Blocks of one page checked in order by one worker."""

    def __init__(self, doc, blocks, what, estimate):
        self.doc, self.blocks, self.what, self.estimate = doc, blocks, what, estimate


def plan_page(work, index, path):
    """The tasks of one page. Every file= block is in the page's folder before any block is
    checked (a cmake block may come before the sources it builds), and a copy of them alone is
    what each cmake and meson block builds in, so those run apart from the page's other blocks,
    which stay in order: a program runs with the last app built before it, and an `sh run`
    block with what the blocks before it left in the folder."""
    doc = Doc(path, work, index)
    blocks = parse_blocks(path)
    for block in blocks:
        if "file" in block.attrs:
            with open(os.path.join(doc.dir, block.attrs["file"]), "w", encoding="utf-8") as f:
                f.write(block.text)
    shutil.copytree(doc.dir, doc.sources)
    where = os.path.relpath(path)
    chain = [b for b in blocks if b.lang not in BUILD_LANGS]
    tasks = [Task(doc, chain, where, sum(cost(b, blocks) for b in chain))]
    for b in blocks:
        if b.lang in BUILD_LANGS:
            tasks.append(Task(doc, [b], f"{b.where()} ({b.lang})", cost(b, blocks)))
    return tasks


def run_task(checker, args, task):
    """Checks a task's blocks in order; returns (blocks checked, blocks that passed but should
    have failed under --expect-failures)."""
    started = time.monotonic()
    checked = 0
    unexpected = []
    for block in task.blocks:
        try:
            if checker.check(block, task.doc):
                checked += 1
                if args.expect_failures:
                    unexpected.append(block.where())
        except CheckError as e:
            checked += 1
            if args.expect_failures:
                checker.say(f"  {block.where()}: failed as it should: {str(e).splitlines()[0]}")
            else:
                checker.failures.append(f"{block.where()} ({block.lang}): {e}")
    if task.blocks:
        checker.say(f"  {task.what}: {checked} checked of {len(task.blocks)} blocks, "
                    f"{time.monotonic() - started:.1f} s")
    return checked, unexpected


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cmake-install")
    ap.add_argument("--include")
    ap.add_argument("--testhost")
    ap.add_argument("--serve")
    ap.add_argument("--source", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("--sanitize", action="store_true")
    ap.add_argument("--expect-failures", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--work")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    if not args.cmake_install and not (args.include and args.testhost):
        ap.error("give --cmake-install BUILD_DIR, or --include and --testhost")

    if args.work:
        work = os.path.abspath(args.work)
        marker = os.path.join(work, ".cwsgi-docs-work")
        # Empty it only if an earlier run made it: never wipe a folder someone mistyped.
        if os.path.isdir(work) and os.listdir(work) and not os.path.exists(marker):
            ap.error(f"--work {work}: not empty and not made by this checker")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        open(marker, "w").close()
    else:
        work = tempfile.mkdtemp(prefix="cwsgi-docs-")
    try:
        try:
            checker = Checker(args, work)
        except CheckError as e:
            print(f"FAIL: before any block: {e}")
            return 1
        files = []
        for f in args.files:  # a folder stands for its *.md files, found at run time
            files += sorted(glob.glob(os.path.join(f, "*.md"))) if os.path.isdir(f) else [f]
        # Pages are independent (each has its own folders), and so are a page's cmake and meson
        # blocks (plan_page): two tasks at a time, the costliest first, so that the slow C++
        # builds overlap instead of queueing behind one another.
        tasks = [t for i, f in enumerate(files) for t in plan_page(work, i, f)]
        tasks.sort(key=lambda t: -t.estimate)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda t: run_task(checker, args, t), tasks))
        checked = sum(r[0] for r in results)
        unexpected = [w for r in results for w in r[1]]
        for kind in sorted(checker.counts):
            print(f"{checker.counts[kind]:4d}  {kind}")
        if args.expect_failures:
            if unexpected or checked == 0:
                print("FAIL: these blocks should have failed: " + ", ".join(unexpected or ["(none checked)"]))
                return 1
            print(f"docs checker: all {checked} broken blocks were caught")
            return 0
        if checked == 0:
            print("FAIL: no block was checked: wrong files, or the fence parser is broken")
            return 1
        for f in sorted(checker.failures):
            print(f"FAIL: {f}\n")
        print(f"docs: {checked} blocks checked, {len(checker.failures)} failed")
        return 1 if checker.failures else 0
    finally:
        if args.keep:
            print(f"scratch folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
