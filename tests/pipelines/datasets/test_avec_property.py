"""Property-based test of the AVEC adapter and ExampleGen under random damage to a corpus with the
distributed AVEC 2019 CES's properties (`write_avec_real_fixture`: dyadic pairs sharing their audio
features, feature files padded to 1768 rows past labels of 974-1768 rows, a zero start, quoted
names, two feature folders per modality).

Each generated example copies the pristine corpus, applies one or two kinds of damage to
distinct files, and runs `python -m pipelines.example_gen` (its `main`, in-process). The property:
when every damage is benign (another separator, quoting or number format, CRLF line ends, a BOM, a
duplicated row past the labels' end, drift well inside the tolerance, unrelated extra files), the
shards are byte-equal to the undamaged corpus's (a row changed, deleted or duplicated among the
padding rows past the labels is benign too: those rows are cut); otherwise the command exits with code 2 and one
line naming a damaged file, prints no traceback and leaves no manifest.

CI runs `DEFAULT_EXAMPLES` derandomised examples; set COLD_KERAS_PROPERTY_EXAMPLES=N for N random
ones (`pytest ... --hypothesis-show-statistics` prints how many ran and which damage they drew).
"""

import contextlib
import io
import os
import shutil
import warnings

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipelines import example_gen
from pipelines.data import records
from tests.fixtures import AVEC_LABEL_FRAMES, AVEC_PAIRS, write_avec_real_fixture

DEFAULT_EXAMPLES = 20
EXAMPLES = int(os.environ.get("COLD_KERAS_PROPERTY_EXAMPLES", DEFAULT_EXAMPLES))
NAMES = tuple(name for pair in AVEC_PAIRS for name in pair)
AUDIO, VISUAL = (("egemaps", 3), ("mfcc", 3)), (("au", 2), ("baseline", 2))
FOLDERS = ("labels", "egemaps", "mfcc", "au", "baseline")
BENIGN, ERROR = "benign", "error"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The undamaged corpus and the shard checksums ExampleGen writes for it."""
    root = tmp_path_factory.mktemp("pristine") / "corpus"
    # Equal dimensions within a modality, so that a file copied into the other folder is read.
    write_avec_real_fixture(root, audio_folders=AUDIO, visual_folders=VISUAL)
    code, lines, out = run_example_gen(root, tmp_path_factory.mktemp("pristine-out"))
    assert code == 0, lines
    return root, shard_digests(out)


def run_example_gen(root, out):
    """(exit code, stderr lines, output folder) of the ExampleGen command on `root`."""
    out = out / "artefacts"
    stderr = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            example_gen.main(
                [
                    "--dataset",
                    "avec",
                    "--data-dir",
                    str(root),
                    "--audio-features",
                    "egemaps,mfcc",
                    "--visual-features",
                    "au,baseline",
                    "--output-dir",
                    str(out),
                    "--no-progress",
                ]
            )
        except SystemExit as leave:
            code = leave.code
    return code, stderr.getvalue().strip().splitlines(), out


def shard_digests(out):
    manifest = records.load_manifest(out)
    return {
        name: ([s["sha256"] for s in part["shards"]], part["num_recordings"], part["num_frames"])
        for name, part in manifest["partitions"].items()
    }


# --------------------------------------------------------------------------- damage
# Each takes (root, draw, path) and returns the expected outcome (BENIGN or ERROR), or None when the
# damage does not apply to that file.


def _lines(path):
    return path.read_text().split("\n")[:-1]  # every line ends with a line break


def _write(path, lines, end="\n"):
    path.write_text(end.join(lines) + end)


def _is_labels(path):
    return path.parent.name == "labels"


def _past_labels(path, row):
    """Whether data row `row` (0-based) of feature file `path` lies past its recording's labels, where
    it is cut (unlabelled recordings have no such rows: every row is checked against the frame grid)."""
    return not _is_labels(path) and row >= AVEC_LABEL_FRAMES.get(path.stem, float("inf"))


def _draw_line(draw, path, low, high):
    """A line number in [low, high]; in a feature file padded past its labels, first a fair choice
    between the lines of labelled frames and the padding lines (numbers near the end are rare draws)."""
    labelled = AVEC_LABEL_FRAMES.get(path.stem)
    if _is_labels(path) or labelled is None or not low <= labelled < high:
        return draw(st.integers(low, high))
    past = draw(st.booleans())
    event(f"row {'past' if past else 'within'} the labels")
    return draw(st.integers(labelled + 1, high) if past else st.integers(low, labelled))


def truncate_mid_line(root, draw, path):
    lines = _lines(path)
    k = draw(st.integers(1, len(lines) - 1))
    cut = draw(st.integers(1, len(lines[k]) - 1))
    path.write_text("\n".join(lines[:k]) + "\n" + lines[k][:cut])
    return ERROR


def truncate_to_zero(root, draw, path):
    path.write_text("")
    return ERROR


def delete_interior_row(root, draw, path):
    lines = _lines(path)
    k = _draw_line(draw, path, 2, len(lines) - 2)  # not the first or the last row
    _write(path, lines[:k] + lines[k + 1 :])
    return BENIGN if _past_labels(path, k - 1) else ERROR


def duplicate_row(root, draw, path):
    lines = _lines(path)
    k = _draw_line(draw, path, 1, len(lines) - 1)
    _write(path, lines[: k + 1] + [lines[k]] + lines[k + 1 :])
    # A feature file longer than the labels is cut to their length (AVEC pads its files).
    return BENIGN if _past_labels(path, k) else ERROR


def shift_timestamp(root, draw, path):
    lines = _lines(path)
    k = _draw_line(draw, path, 1, len(lines) - 1)
    sign = draw(st.sampled_from((-1.0, 1.0)))
    small = not _is_labels(path) and draw(st.booleans())
    size = draw(st.floats(0.0005, 0.004) if small else st.floats(0.006, 0.09))
    cells = lines[k].split(";")
    value = float(cells[1]) + sign * size
    if value < 0:
        return None
    cells[1] = f"{value:.6f}"
    lines[k] = ";".join(cells)
    _write(path, lines)
    return BENIGN if small or _past_labels(path, k - 1) else ERROR


def change_hop(root, draw, path):
    if _is_labels(path):
        return None  # the first label file sets the corpus hop: the others would be named
    hop = draw(st.sampled_from((0.04, 0.05, 0.2, 1.0)))
    lines = _lines(path)
    for k in range(1, len(lines)):
        cells = lines[k].split(";")
        cells[1] = f"{(k - 1) * hop:.6f}"
        lines[k] = ";".join(cells)
    _write(path, lines)
    return ERROR


def reformat_numbers(root, draw, path):
    style = draw(st.sampled_from(("{:.17e}", "{!r}", "{:+.17g}")))
    lines = _lines(path)
    for k in range(1, len(lines)):
        cells = lines[k].split(";")
        lines[k] = ";".join(cells[:1] + [style.format(float(cell)) for cell in cells[1:]])
    _write(path, lines)
    return BENIGN


def bad_value(root, draw, path):
    lines = _lines(path)
    k = draw(st.integers(1, len(lines) - 1))
    cells = lines[k].split(";")
    column = draw(st.integers(1, 3 if _is_labels(path) else len(cells) - 1))
    choices = ["1e300", "-1e39", "nan", "inf", "-inf", "abc", "", "0x1p3"]
    if _is_labels(path) and column > 1:
        choices += ["1.5", "-1.01"]
    cells[column] = draw(st.sampled_from(choices))
    lines[k] = ";".join(cells)
    _write(path, lines)
    return ERROR


def other_name(root, draw, path):
    lines = _lines(path)
    k = draw(st.integers(1, len(lines) - 1))
    other = draw(st.sampled_from([name for name in NAMES if name != path.stem]))
    lines[k] = f"'{other}'" + lines[k][lines[k].index(";") :]
    _write(path, lines)
    return ERROR


def requote(root, draw, path):
    quoted = f"'{path.stem}'"
    new = draw(st.sampled_from((f'"{path.stem}"', path.stem, f"'{path.stem}", f"{path.stem}'", f" {quoted}")))
    path.write_text(path.read_text().replace(quoted, new))
    return BENIGN if new in (f'"{path.stem}"', path.stem) else ERROR


def change_separator(root, draw, path):
    sep = draw(st.sampled_from((",", "\t")))
    path.write_text(path.read_text().replace(";", sep))
    return BENIGN


def change_separator_of_one_line(root, draw, path):
    lines = _lines(path)
    k = draw(st.integers(1, len(lines) - 1))
    lines[k] = lines[k].replace(";", ",")
    _write(path, lines)
    return ERROR


def reencode(root, draw, path):
    kind = draw(st.sampled_from(("utf-16", "utf-8-sig", "crlf", "blank-lines")))
    text = path.read_text()
    if kind == "crlf":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    elif kind == "blank-lines":
        path.write_text(text + "\n\n")
    else:
        path.write_bytes(text.encode(kind))
    return ERROR if kind == "utf-16" else BENIGN


def garbage(root, draw, path):
    path.write_bytes(b"\xff\xfe\x00" + draw(st.binary(min_size=0, max_size=64)))
    return ERROR


def delete_file(root, draw, path):
    if _is_labels(path) and path.stem.startswith("Test"):
        return None  # test labels are optional: without them the recording is unlabelled
    path.unlink()
    return ERROR


def chmod_folder(root, draw, path):
    """Unreadable feature folder or file: an error, except for root, who reads them anyway."""
    target = draw(st.sampled_from((path, path.parent)))
    target.chmod(0)
    return BENIGN if os.geteuid() == 0 else ERROR


def copy_from_other_folder(root, draw, path):
    """The file of the modality's first folder copied over the same recording's file in the second
    (a folder copied into another): an error naming the copy."""
    if path.parent.name not in ("mfcc", "baseline"):
        return None
    source = root / {"mfcc": "egemaps", "baseline": "au"}[path.parent.name] / path.name
    path.write_text(source.read_text())
    return ERROR


def broken_link(root, draw, path):
    """The file replaced by a dangling symbolic link or a link loop: an error naming the link."""
    path.unlink()
    path.symlink_to(path if draw(st.booleans()) else path.parent / "gone" / path.name)
    return ERROR


def extra_file(root, draw, path):
    name = draw(st.sampled_from(("notes.txt", ".hidden.csv", "README.md")))
    (path.parent / name).write_text("not; a; corpus file\n")
    return BENIGN


DAMAGE = (
    truncate_mid_line,
    truncate_to_zero,
    delete_interior_row,
    duplicate_row,
    shift_timestamp,
    change_hop,
    reformat_numbers,
    bad_value,
    other_name,
    requote,
    change_separator,
    change_separator_of_one_line,
    reencode,
    garbage,
    delete_file,
    chmod_folder,
    copy_from_other_folder,
    broken_link,
    extra_file,
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="COLD_KERAS_PROPERTY_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
)
@given(data=st.data())
def test_damage_is_benign_or_one_line_naming_the_file(pristine, tmp_path_factory, data):
    source, expected_shards = pristine
    work = tmp_path_factory.mktemp("damaged")
    root = work / "corpus"
    shutil.copytree(source, root)
    files = sorted(path for folder in FOLDERS for name in NAMES if (path := root / folder / f"{name}.csv").exists())
    count = data.draw(st.integers(1, 2), label="number of damages")
    targets = data.draw(
        st.lists(st.sampled_from(files), min_size=count, max_size=count, unique=True), label="damaged files"
    )
    applied = []
    try:
        for path in targets:
            damage = data.draw(st.sampled_from(DAMAGE), label=f"damage to {path.parent.name}/{path.name}")
            outcome = damage(root, data.draw, path)
            if outcome is not None:
                applied.append((path, damage.__name__, outcome))
                event(f"{damage.__name__}: {outcome}")
        code, lines, out = run_example_gen(root, work)
    finally:
        for path in [root, *root.iterdir()] + files:
            if path.exists() and not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    broken = [(str(path), name) for path, name, outcome in applied if outcome == ERROR]
    event(f"expected {'error' if broken else 'benign'}")
    assert not any("Traceback" in line for line in lines), lines
    if not broken:
        assert code == 0, (applied, lines)
        assert shard_digests(out) == expected_shards, applied
        return
    assert code == 2, (applied, lines)
    assert len(lines) == 1, lines
    assert any(lines[0].startswith(f"error: {path}:") for path, _ in broken), (broken, lines)
    assert not (out / "manifest.json").exists()
