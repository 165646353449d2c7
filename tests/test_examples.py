"""Docs that stay true: every example in every command's --help runs, and every command and option the README
names exists.

The examples run as written, in a folder of tiny generated songs laid out under the names they use
(``tracks/``, ``song.mp3``, ``models/demo``, ``features.csv``...).
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR, synth_song

from genre_cnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


# === What the docs say ===
def help_examples() -> list[tuple[str, str]]:
    """``(command, example line)`` of every "Example(s):" block of every command's help, continuations joined."""
    found = []
    for name, command in sorted(main.commands.items()):
        text = command.help or ""
        for block in re.findall(r"Examples?:\n((?:[ \t]+\S.*\n?)+)", text):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].strip()
                if "genre-cnn" in line:
                    found.append((name, " ".join(line.split())))
    return found


def readme_command_lines() -> list[str]:
    """Every ``genre-cnn COMMAND ...`` the README shows, in code blocks or inline code."""
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S) + re.findall(r"^    (genre-cnn .*)$", README,
                                                                                        flags=re.M):
        lines += [line for line in block.replace("\\\n", " ").splitlines() if "genre-cnn " in line]
    lines += re.findall(r"`(genre-cnn [^`]+)`", README)
    return lines


def readme_option_rows() -> list[tuple[str, str]]:
    """``(command, option)`` of every option table row, under the ``### `genre-cnn COMMAND`` heading it belongs to."""
    rows, command = [], None
    for line in README.splitlines():
        heading = re.match(r"#+ `genre-cnn ([a-z-]+)", line)
        if heading:
            command = heading.group(1)
        elif line.startswith("## "):
            command = None
        elif command and line.startswith("| `-"):
            rows += [(command, option) for option in re.findall(r"`(--?[a-z][a-z0-9-]*)", line.split("|")[1])]
    return rows


def options_of(command: str) -> set[str]:
    names = {"--help", "-h"}
    for parameter in main.commands[command].params:
        names.update(parameter.opts + parameter.secondary_opts)
    return names


def test_the_docs_show_examples_of_every_command():
    assert {name for name, _ in help_examples()} == set(main.commands)
    assert len(readme_command_lines()) > 30 and len(readme_option_rows()) > 50


@pytest.mark.parametrize("line", sorted(set(readme_command_lines())))
def test_every_command_and_option_the_readme_shows_exists(line):
    words = shlex.split(line.split("genre-cnn ", 1)[1].split("#")[0].replace("|", " "), posix=True)
    command = words[0]
    assert command in main.commands, f"README: 'genre-cnn {command}' is not a command"
    unknown = [w.split("=")[0] for w in words[1:] if re.fullmatch(r"--?[a-z][a-z0-9-]*(=.*)?", w)
               and w.split("=")[0] not in options_of(command)]
    assert not unknown, f"README: 'genre-cnn {command}' has no option {unknown[0]} ({line.strip()})"


@pytest.mark.parametrize("command, option", sorted(set(readme_option_rows())))
def test_every_option_in_the_readme_tables_exists(command, option):
    assert option in options_of(command), f"README, section genre-cnn {command}: no option {option}"


# === The examples, run ===
#: The sandbox's genres (named as in the examples) and the synthetic sound each is made of.
GENRES = {"chiptune": "tones", "electronic": "noise"}


def write_songs(root: Path, *, songs: int, seconds: float) -> Path:
    for genre, sound in GENRES.items():
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(songs):
            soundfile.write(root / genre / f"{genre}_{i}.mp3", synth_song(sound, i, seconds=seconds), SR, format="MP3")
    return root


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder holding every file and folder the examples name, made of tiny songs."""
    root = tmp_path_factory.mktemp("examples")
    tracks = write_songs(root / "tracks", songs=5, seconds=5)
    soundfile.write(tracks / "chiptune" / "goattracker_dojo.mp3", synth_song("tones", 7, seconds=16), SR, format="MP3")
    soundfile.write(root / "song.mp3", synth_song("tones", 9, seconds=6), SR, format="MP3")
    soundfile.write(root / "dj-set.mp3", synth_song("noise", 3, seconds=40), SR, format="MP3")
    for folder, songs in (("music", 3), ("heldout", 3), ("new_songs", 4), ("audio", 5)):
        write_songs(root / folder, songs=songs, seconds=5)
    write_tagged_library(root / "library")
    (root / "my-genres.csv").write_text("tag,genre\nChip Tune,chiptune\n", encoding="utf-8")
    rows = [f"{p.relative_to(root / 'audio').as_posix()},{p.parent.name},artist{i % 5},{i % 2}"
            for i, p in enumerate(sorted((root / "audio").rglob("*.mp3")))]
    (root / "meta.csv").write_text("file,genre,artist,fold\n" + "\n".join(rows) + "\n")
    run = CliRunner()
    with _inside(root):
        for args in (["build-dataset", "tracks", "--workers", "1", "-q"],
                     ["fit", "--epochs", "2", "--name", "demo", "-q"],
                     ["fit", "--epochs", "1", "--name", "old", "-q"],
                     ["features", "tracks", "--out", "features.csv", "-q"],
                     ["baseline", "features.csv", "--tracks", "tracks", "--out", "models/baseline"]):
            result = run.invoke(main, args)
            assert result.exit_code == 0, f"{args}: {result.output}"
        serve_log = subprocess.run([sys.executable, "-c", _SERVE_LOG], capture_output=True, text=True, check=True)
        (root / "requests.jsonl").write_text(serve_log.stdout)
        (root / "models" / "latest").write_text("demo\n")
    return root


_SERVE_LOG = """
import json
from pathlib import Path
from genre_cnn.serving import inference, log_record
inference.start("models/demo", "auto")
for path in sorted(Path("new_songs").rglob("*.mp3")):
    print(json.dumps(log_record(inference.analyse(str(path), max_seconds=600, profile=True), model="demo")))
"""


def write_tagged_library(root: Path) -> None:
    """A music library whose own tags name the genres ("Chip Tune", "Electronica") and artists; two songs untagged."""
    from mutagen.id3 import ID3, TCON, TPE1

    write_songs(root, songs=6, seconds=5)
    for genre, value in (("chiptune", "Chip Tune"), ("electronic", "Electronica")):
        for i, path in enumerate(sorted((root / genre).glob("*.mp3"))):
            if i < 5:
                tags = ID3()
                tags.add(TCON(encoding=3, text=[value]))
                tags.add(TPE1(encoding=3, text=[f"{genre} artist {i}"]))
                tags.save(path)


class _inside:
    def __init__(self, folder):
        self.folder = folder

    def __enter__(self):
        import os

        self.before = os.getcwd()
        os.chdir(self.folder)

    def __exit__(self, *exc):
        import os

        os.chdir(self.before)


#: Examples that run a long-lived server, and how to see that they work.
SERVERS = ("serve",)
#: Exit codes an example may end with besides 0 (monitor: 3 means "drift found", a verdict, not a failure).
VERDICTS = {"monitor": (0, 3)}


@pytest.mark.slow
@pytest.mark.parametrize("command, line", help_examples())
def test_every_help_example_runs_as_written(sandbox, command, line):
    if command in SERVERS:
        return _serve_example(sandbox, line)
    if line.startswith("for ") or "*" in line or ">" in line:  # shell syntax: loops, globs, redirections
        result = subprocess.run(["bash", "-c", line.replace("genre-cnn ", f"{sys.executable} -m genre_cnn ")],
                                cwd=sandbox, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
        return
    args = shlex.split(line)[1:]
    with _inside(sandbox):
        result = CliRunner().invoke(main, args)
    assert result.exit_code in VERDICTS.get(command, (0,)), f"{line}\n{result.output[-2000:]}"


def _serve_example(sandbox: Path, line: str) -> None:
    """Start the server as the example says (its port swapped for a free one), wait until ready, stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = shlex.split(re.sub(r"--port \d+", f"--port {port}", line))[1:]
    process = subprocess.Popen([sys.executable, "-m", "genre_cnn", *args, "--workers", "1"], cwd=sandbox,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"{line}\n{process.stdout.read()[-2000:]}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{line}: never ready"
            time.sleep(0.2)
        with open(sandbox / "song.mp3", "rb") as song:
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/classify", files={"file": ("song.mp3", song)})
        assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python API example, run as written (one epoch instead of twenty) on generated songs."""
    from conftest import write_tracks

    example = re.findall(r"```python\n(.*?)```", README, flags=re.S)[0]
    assert "epochs=20" in example
    write_tracks(tmp_path / "tracks", songs=4, seconds=10.0)
    write_tracks(tmp_path / "new_music", songs=1, seconds=10.0)
    monkeypatch.chdir(tmp_path)
    printed = []
    exec(example.replace("epochs=20", "epochs=1"), {"print": lambda *values: printed.append(values)})
    assert 0 <= printed[0][0] <= 1  # the song accuracy
    assert len(printed) == 1 + 3 and all(genre in ("tones", "chirps", "noise") for _, genre, _ in printed[1:])


def test_the_readme_training_options_example_fails_as_it_says():
    """The README's example of a kind's options: the configs it builds are valid, and the one it refuses is refused
    with the message it shows."""
    from genre_cnn.errors import ConfigError
    from genre_cnn.kinds import configured

    [example] = [block for block in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "ConfigError" in block]
    code, shown = example.split("# ConfigError: ")
    names = {}
    with pytest.raises(ConfigError) as caught:
        exec(code, names)
    assert str(caught.value) == shown.strip()
    assert [configured(names[name]).kind for name in ("augmented", "distilled", "fine_tuned")] == \
        ["cnn", "cnn", "musicnn"]
    assert names["augmented"].options.augment == ("gain", "mixup")
