"""The code each lesson shows is a standalone script that prints the numbers it drew.

Every lesson's programs are written as scripts, run in a folder where
nothing of OptLab is importable, and their JSON equals the results the
lesson drew its charts from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from optlab.lessons import LESSONS, run_lesson
from optlab.lessons.parts import BOWL, CNN_IMAGES
from optlab.script.lessons import CnnData, LessonProgram, SurfaceLoss, first_images, lesson_script
from tests.lessons.test_lessons import cifar_folder
from tests.script.test_export import finish, imported_modules, run_script

#: The programs run as scripts: every loop function, the scaled loss and both plugins
#: (the rest are written, and checked to parse, by `lesson_script` itself).
RUN = {
    ("training-loop", 0),  # compare, zero_grad forgotten
    ("training-loop", 1),  # train_cnn on CIFAR-10
    ("closure", 0),
    ("change-lr", 0),
    ("per-layer-lr", 0),  # fine_tune: add_param_group mid-run
    ("schedulers", 1),
    ("state-dict", 0),
    ("adam-bias", 0),  # the embedded AdamNoBiasCorrection
    ("adam-bias", 1),  # the bowl scaled by 1e-9
    ("your-own", 0),  # the embedded Lion
}
#: Scripts at once: each imports torch, on a machine of two cores.
AT_ONCE = 3


def test_lesson_scripts_run_alone_and_print_what_the_lesson_drew(tmp_path: Path) -> None:
    folder = cifar_folder()
    images = first_images(folder, CNN_IMAGES)
    jobs = []
    for lesson in LESSONS:
        run = run_lesson(lesson, images=images)
        for k, (program, source, result) in enumerate(
            zip(run.programs, run.scripts(), run.results, strict=True)
        ):
            assert imported_modules(source) - set(sys.stdlib_module_names) == {"torch"}
            if (lesson.key, k) not in RUN:
                continue
            path = tmp_path / f"{lesson.key}_{k}.py"
            path.write_text(source)
            args = (str(folder),) if isinstance(program.loss, CnnData) else ()
            jobs.append((f"{lesson.key} {k}", path, args, result))
    assert len(jobs) == len(RUN)
    for first in range(0, len(jobs), AT_ONCE):
        batch = [
            (key, run_script(path, *args), result)
            for key, path, args, result in jobs[first : first + AT_ONCE]
        ]
        for key, proc, expected in batch:
            _, printed = finish(proc)
            assert printed == json.loads(json.dumps(expected)), key


def test_a_script_names_what_it_runs() -> None:
    program = LessonProgram(
        "A scaled bowl",
        "compare",
        (("start", [1.0, 1.0]), ("runs", []), ("steps", 3)),
        SurfaceLoss(BOWL, 1e-9),
    )
    source = lesson_script(program)
    assert "return 1e-09 * _quadratic(xy, kappa=10.0)" in source
    assert "def compare(" in source and "def train(" in source
    assert source.rstrip().endswith("print(json.dumps(result))")
    with pytest.raises(ValueError, match="not a lesson loop"):
        LessonProgram("x", "print", (), SurfaceLoss(BOWL))
    with pytest.raises(ValueError, match="needs the first 128 CIFAR-10 images"):
        LessonProgram("x", "train_cnn", (), CnnData("seednet", CNN_IMAGES)).run()
