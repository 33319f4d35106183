"""Lessons on the torch.optim API: the loop, step(closure), changing the lr, schedulers,
state_dict (lessons 1, 2, 3, 5 and 6 of the Lessons page)."""

from __future__ import annotations

from typing import Any

import torch

from optlab.lessons import plots
from optlab.lessons.lesson import Control, Lesson, Results, Values
from optlab.lessons.parts import (
    BOWL,
    CNN_BATCH,
    ROSENBROCK,
    cnn_data,
    cnn_lab,
    compare,
    loss,
    playground,
    run,
    start_of,
)
from optlab.script.lessons import LessonProgram

# --- 1. The training loop ----------------------------------------------------------

_LOOP_STEPS, _CNN_STEPS = 40, 8


def _loop_programs(v: Values) -> tuple[LessonProgram, ...]:
    runs = [
        run("zero_grad() every step", torch.optim.SGD, lr=v["lr"]),
        run("zero_grad() forgotten", torch.optim.SGD, zero_grad=False, lr=v["lr"]),
    ]
    cnn_runs = [
        run("zero_grad() every step", torch.optim.SGD, lr=v["cnn_lr"]),
        run("zero_grad() forgotten", torch.optim.SGD, zero_grad=False, lr=v["cnn_lr"]),
    ]
    return (
        compare(
            "The training loop on the ill-conditioned bowl, with and without zero_grad()",
            BOWL,
            runs,
            _LOOP_STEPS,
        ),
        LessonProgram(
            "The training loop on the CIFAR-10 CNN, with and without zero_grad()",
            "train_cnn",
            (("runs", cnn_runs), ("steps", _CNN_STEPS), ("batch_size", CNN_BATCH), ("seed", 0)),
            cnn_data(),
        ),
    )


def _loop_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    surface, cnn = results
    assert surface is not None
    figures = plots.paths_and_curves(
        BOWL,
        surface["runs"],
        ("loop-paths", "loop-grads"),
        lambda r: r["grad_norms"],
        y_title="|xy.grad| when step() reads it",
        title="Surface: the gradient step() sees",
    )
    if cnn is not None:
        figures.append(
            (
                "loop-cnn",
                plots.curves_figure(
                    [(r["label"], r["grad_norms"]) for r in cnn["runs"]],
                    x_title=f"step (a batch of {CNN_BATCH} CIFAR-10 images)",
                    y_title="gradient norm step() sees",
                    log=True,
                    title=f"CNN: the same two loops, {_CNN_STEPS} batches",
                    mode="lines+markers",
                ),
            )
        )
    return figures


def _loop_findings(results: Results, v: Values) -> str:
    surface, cnn = results
    assert surface is not None
    right, wrong = surface["runs"]
    text = (
        f"On the bowl, after {len(wrong['grad_norms'])} steps the gradient step() read is "
        f"{right['grad_norms'][-1]:.3g} with zero_grad() and {wrong['grad_norms'][-1]:.3g} "
        "without: the forgotten call sums every gradient so far, like a momentum of 1."
    )
    if cnn is not None:
        a, b = cnn["runs"]
        text += (
            f" On the CNN the gradient norm after {len(b['grad_norms'])} batches is "
            f"{a['grad_norms'][-1]:.3g} with the call and {b['grad_norms'][-1]:.3g} without."
        )
    return text


TRAINING_LOOP = Lesson(
    key="training-loop",
    number=1,
    title="The training loop",
    text=(
        "Every step of training is four calls: `optimizer.zero_grad()` clears the "
        "gradients, the forward pass computes the loss, `loss.backward()` **adds** "
        "each parameter's gradient to its `.grad`, and `optimizer.step()` moves the "
        "parameters using `.grad`. `backward()` adds rather than overwrites (so "
        "gradients can be accumulated over several batches on purpose), which is why "
        "forgetting `zero_grad()` makes every step use the sum of all gradients so far. "
        "Below, the same SGD run with and without the call, on a surface and on the CNN."
    ),
    controls=(
        Control("lr", "Learning rate (surface)", 0.05, 0.001, 0.5, log=True),
        Control("cnn_lr", "Learning rate (CNN)", 0.01, 0.0001, 0.1, log=True),
    ),
    programs=_loop_programs,
    figures=_loop_figures,
    findings=_loop_findings,
    links=lambda v: (
        playground(
            "Open the surface run in the playground", BOWL, _LOOP_STEPS, [("sgd", {"lr": v["lr"]})]
        ),
        cnn_lab("Open SGD in the CNN lab", [("sgd", {"lr": v["cnn_lr"]})], 200, CNN_BATCH),
    ),
)

# --- 2. step(closure) --------------------------------------------------------------

_LBFGS_STEPS = 10


def _closure_programs(v: Values) -> tuple[LessonProgram, ...]:
    kwargs = {"lr": 1.0, "max_iter": v["max_iter"], "line_search_fn": v["line_search"]}
    if v["line_search"] == "none":
        kwargs["line_search_fn"] = None
    return (
        LessonProgram(
            "L-BFGS with step(closure) on Rosenbrock, every closure call recorded",
            "closure_steps",
            (("start", start_of(ROSENBROCK)), ("kwargs", kwargs), ("steps", _LBFGS_STEPS)),
            loss(ROSENBROCK),
        ),
    )


def _closure_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    (r,) = results
    assert r is not None
    evals = r["evaluations"]
    fig = plots.paths_figure(ROSENBROCK, [("after each step()", r["path"])], markers=True)
    fig.add_scatter(
        x=[e[1] for e in evals],
        y=[e[2] for e in evals],
        mode="markers",
        marker=dict(symbol="x", size=8, color="#d62728"),
        name="closure() called here",
        customdata=[[e[0] + 1, e[3]] for e in evals],
        hovertemplate="closure call in step %{customdata[0]}<br>f=%{customdata[1]:.4g}"
        "<extra></extra>",
    )
    bars = plots.bars_figure(
        r["counts"],
        x_title="step() call",
        y_title="closure calls",
        name="closure calls",
        title="Evaluations of f per step()",
    )
    return [("closure-paths", fig), ("closure-counts", bars)]


def _closure_findings(results: Results, v: Values) -> str:
    (r,) = results
    assert r is not None
    counts = r["counts"]
    return (
        f"{len(counts)} calls of `step(closure)` evaluated f **{sum(counts)} times** "
        f"(from {min(counts)} to {max(counts)} per step, at most max_iter × 1.25 = "
        f"{int(v['max_iter'] * 1.25)}): L-BFGS needs f and its gradient at points of its "
        "own choosing inside one step, which only a closure can give it."
    )


CLOSURE = Lesson(
    key="closure",
    number=2,
    title="step(closure)",
    text=(
        "Most optimizers need one gradient per step, so `loss.backward()` before "
        "`optimizer.step()` is enough. L-BFGS searches along a direction and iterates "
        "inside one step: it must evaluate the loss and its gradient at points it picks, "
        "so `step()` takes a **closure** that zeroes the gradients, recomputes the loss, "
        "calls `backward()` and returns the loss, and L-BFGS calls it as often as it "
        "needs. Every red cross is one call of the closure."
    ),
    controls=(
        Control("max_iter", "max_iter (inner iterations per step)", 20, 1, 40, integer=True),
        Control(
            "line_search",
            "line_search_fn",
            "strong_wolfe",
            options=("strong_wolfe", "none"),
            help="strong_wolfe: a line search that may call the closure several times",
        ),
    ),
    programs=_closure_programs,
    figures=_closure_figures,
    findings=_closure_findings,
    links=lambda v: (
        playground(
            "Open in the playground",
            ROSENBROCK,
            _LBFGS_STEPS,
            [
                (
                    "lbfgs",
                    {
                        "max_iter": v["max_iter"],
                        "line_search_fn": None if v["line_search"] == "none" else v["line_search"],
                    },
                )
            ],
        ),
    ),
)

# --- 3. Changing the learning rate, two ways --------------------------------------

_CHANGE_STEPS = 120
_CHANGE_OPTIMIZERS = {
    "Adam": (torch.optim.Adam, "adam", {"lr": 0.05}),
    "SGD with momentum 0.9": (torch.optim.SGD, "sgd", {"lr": 0.002, "momentum": 0.9}),
}


def _change_programs(v: Values) -> tuple[LessonProgram, ...]:
    cls, _, kwargs = _CHANGE_OPTIMIZERS[v["optimizer"]]
    new_lr = kwargs["lr"] * v["factor"]
    return tuple(
        LessonProgram(
            f"Changing the lr at step {v['at']}: {method}",
            "change_lr",
            (
                ("start", start_of(ROSENBROCK)),
                ("run", run(v["optimizer"], cls, **kwargs)),
                ("steps", _CHANGE_STEPS),
                ("at", v["at"]),
                ("new_lr", new_lr),
                ("method", method),
            ),
            loss(ROSENBROCK),
        )
        for method in ("new optimizer", "param_groups")
    )


def _change_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    named = [(_method_label(r), r) for r in results if r is not None]
    paths = plots.paths_figure(ROSENBROCK, [(name, r["path"]) for name, r in named])
    at = v["at"]
    paths.add_scatter(
        x=[named[0][1]["path"][at][0]],
        y=[named[0][1]["path"][at][1]],
        mode="markers",
        marker=dict(symbol="diamond", size=12, color="black"),
        name=f"step {at}: the lr changes",
    )
    steps = [(name, plots.step_lengths(r["path"])) for name, r in named]
    lengths = plots.curves_figure(
        steps, x_title="step", y_title="step length |Δθ|", log=True, title="The jolt at step t"
    )
    lengths.add_vline(x=at + 1, line_dash="dot", line_color="black")
    return [("lr-change-paths", paths), ("lr-change-steps", lengths)]


def _method_label(r: dict) -> str:
    if r["label"] == "new optimizer":
        return "method 1: a new optimizer"
    return "method 2: edit param_groups"


def _change_findings(results: Results, v: Values) -> str:
    new, edited = results
    assert new is not None and edited is not None
    lost = ", ".join(f"`{k}`" for k in edited["state_at_change"]) or "nothing"
    return (
        f"Right after the change at step {v['at']}, the new optimizer's `state` is "
        f"{'empty' if not new['state_at_change'] else new['state_at_change']}; the edited "
        f"one still holds {lost}. The first step after the change is "
        f"{plots.step_lengths(new['path'])[v['at']]:.3g} long with a new optimizer and "
        f"{plots.step_lengths(edited['path'])[v['at']]:.3g} with the edit."
    )


CHANGE_LR = Lesson(
    key="change-lr",
    number=3,
    title="Changing the learning rate, two ways",
    text=(
        "The tutorials change the lr mid-run in two ways. Method 1 builds a **new "
        "optimizer** with the new lr: simple, but the new optimizer starts with an empty "
        "`state`, so momentum buffers (SGD) or moment estimates and the step count (Adam) "
        "are lost and the run jolts. Method 2 **edits** "
        "`for g in optimizer.param_groups: g['lr'] = new_lr`: only the lr changes, the "
        "state is kept. Both runs below are identical until step t."
    ),
    controls=(
        Control("optimizer", "Optimizer", "Adam", options=tuple(_CHANGE_OPTIMIZERS)),
        Control("at", "Change at step t", 60, 5, 110, integer=True),
        Control("factor", "New lr = old lr x", 0.5, 0.01, 10.0, log=True),
    ),
    programs=_change_programs,
    figures=_change_figures,
    findings=_change_findings,
    links=lambda v: (
        playground(
            "Open method 2 in the playground (a planned change edits param_groups)",
            ROSENBROCK,
            _CHANGE_STEPS,
            [(_CHANGE_OPTIMIZERS[v["optimizer"]][1], _CHANGE_OPTIMIZERS[v["optimizer"]][2])],
            [f"{v['at']}:lr={_CHANGE_OPTIMIZERS[v['optimizer']][2]['lr'] * v['factor']!r}"],
        ),
    ),
)

# --- 5. Schedulers -----------------------------------------------------------------

_EPOCHS, _BATCHES = 6, 100


def _scheduler_programs(v: Values) -> tuple[LessonProgram, ...]:
    return tuple(
        LessonProgram(
            "StepLR stepped " + ("once per batch (the mistake)" if per_batch else "per epoch"),
            "scheduled",
            (
                ("start", start_of(BOWL)),
                ("run", run("SGD", torch.optim.SGD, lr=0.05)),
                ("epochs", _EPOCHS),
                ("batches", _BATCHES),
                ("step_size", v["step_size"]),
                ("gamma", v["gamma"]),
                ("per_batch", per_batch),
            ),
            loss(BOWL),
        )
        for per_batch in (False, True)
    )


def _scheduler_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    runs = [r for r in results if r is not None]
    lrs = plots.curves_figure(
        [(r["label"], r["lrs"]) for r in runs],
        x_title=f"batch ({_BATCHES} per epoch)",
        y_title="lr",
        # Linear: on a log axis the per-batch lr's hundred decades would flatten
        # the per-epoch staircase.
        title="The lr each batch used",
    )
    losses = plots.curves_figure(
        [(r["label"], r["losses"]) for r in runs],
        x_title="batch",
        y_title="loss",
        log=True,
        title="The loss",
    )
    return [("scheduler-lrs", lrs), ("scheduler-losses", losses)]


def _scheduler_findings(results: Results, v: Values) -> str:
    epoch, batch = results
    assert epoch is not None and batch is not None
    return (
        f"After one epoch ({_BATCHES} batches) the lr is {epoch['lrs'][_BATCHES]:.3g} "
        f"stepped per epoch and {batch['lrs'][_BATCHES]:.3g} stepped per batch: "
        f"`step_size={v['step_size']}` counted batches instead of epochs, so the decay "
        f"came {_BATCHES}× too soon and the run stalled at loss "
        f"{batch['losses'][-1]:.3g} (per epoch: {epoch['losses'][-1]:.3g})."
    )


SCHEDULERS = Lesson(
    key="schedulers",
    number=5,
    title="Schedulers: where scheduler.step() belongs",
    text=(
        "A scheduler changes the lr each time you call `scheduler.step()`, and its "
        "parameters count those calls. `StepLR(optimizer, step_size, gamma)` is written "
        "in epochs: call `scheduler.step()` once per epoch, after the epoch's batches. "
        "Called by mistake inside the batch loop, it decays the lr per batch: "
        f"here {_BATCHES} batches per epoch, so {_BATCHES}× too fast. Both runs use "
        "torch's own StepLR; each batch is one SGD step on the bowl."
    ),
    controls=(
        Control("step_size", "step_size", 2, 1, 5, integer=True),
        Control("gamma", "gamma", 0.5, 0.05, 0.95),
    ),
    programs=_scheduler_programs,
    figures=_scheduler_figures,
    findings=_scheduler_findings,
    links=lambda v: (
        playground(
            "Open the per-batch run in the playground (it steps schedulers per step)",
            BOWL,
            _EPOCHS * _BATCHES,
            [("sgd", {"lr": 0.05})],
            [f"step:step_size={v['step_size']},gamma={v['gamma']!r}"],
        ),
    ),
)

# --- 6. state_dict -----------------------------------------------------------------

_RESUME_STEPS = 80
_RESUME_OPTIMIZERS = {
    "Adam": (torch.optim.Adam, "adam", {"lr": 0.05}),
    "SGD with momentum 0.9": (torch.optim.SGD, "sgd", {"lr": 0.002, "momentum": 0.9}),
    "RMSprop": (torch.optim.RMSprop, "rmsprop", {"lr": 0.01}),
    "Adagrad": (torch.optim.Adagrad, "adagrad", {"lr": 0.5}),
}


def _resume_programs(v: Values) -> tuple[LessonProgram, ...]:
    cls, _, kwargs = _RESUME_OPTIMIZERS[v["optimizer"]]
    return (
        LessonProgram(
            f"Save at step {v['stop_at']}, load into a fresh optimizer, continue",
            "resume",
            (
                ("start", start_of(ROSENBROCK)),
                ("run", run(v["optimizer"], cls, **kwargs)),
                ("steps", _RESUME_STEPS),
                ("stop_at", v["stop_at"]),
            ),
            loss(ROSENBROCK),
        ),
    )


def _resume_figures(results: Results, v: Values) -> list[tuple[str, Any]]:
    (r,) = results
    assert r is not None
    fig = plots.paths_figure(
        ROSENBROCK,
        [("never stopped", r["straight"]), ("saved, loaded, continued", r["resumed"])],
    )
    stop = r["resumed"][v["stop_at"]]
    fig.add_scatter(
        x=[stop[0]],
        y=[stop[1]],
        mode="markers",
        marker=dict(symbol="square", size=11, color="black"),
        name=f"saved at step {v['stop_at']}",
    )
    return [("state-dict-paths", fig)]


def state_lines(r: dict) -> list[str]:
    """What the saved ``state`` holds for the point, one Markdown line per buffer."""
    lines = []
    for index, buffers in r["state"].items():
        for name, value in buffers.items():
            shown = (
                "[" + ", ".join(f"{x:.4g}" for x in value) + "]"
                if isinstance(value, list)
                else f"{value:.6g}"
            )
            lines.append(f"- param {index}: `{name}` = {shown}")
    return lines or ["- (empty: this optimizer keeps no state)"]


def _resume_findings(results: Results, v: Values) -> str:
    (r,) = results
    assert r is not None
    gap = max(
        max(abs(a[0] - b[0]), abs(a[1] - b[1]))
        for a, b in zip(r["straight"], r["resumed"], strict=True)
    )
    same = "identical, bit for bit" if gap == 0 else f"apart by up to {gap:.3g}"
    return (
        f"The two paths are {same}. What `optimizer.state_dict()['state']` held at step "
        f"{v['stop_at']} for {v['optimizer']}:\n\n" + "\n".join(state_lines(r))
    )


STATE_DICT = Lesson(
    key="state-dict",
    number=6,
    title="state_dict: stop, save, load, continue",
    text=(
        "`optimizer.state_dict()` holds two things: `param_groups` (the hyperparameters, "
        "with parameters referred to by index) and `state`, each parameter's buffers "
        "(momentum, moment estimates, step counts). Saved with `torch.save` next to the "
        "model's weights and loaded into a freshly built optimizer with "
        "`load_state_dict`, it lets a run continue exactly as if it had never stopped. "
        "Without it the optimizer would restart from empty buffers (lesson 3's jolt)."
    ),
    controls=(
        Control("optimizer", "Optimizer", "Adam", options=tuple(_RESUME_OPTIMIZERS)),
        Control("stop_at", "Save at step", 30, 1, 79, integer=True),
    ),
    programs=_resume_programs,
    figures=_resume_figures,
    findings=_resume_findings,
    links=lambda v: (
        playground(
            "Open in the playground",
            ROSENBROCK,
            _RESUME_STEPS,
            [_RESUME_OPTIMIZERS[v["optimizer"]][1:]],
        ),
    ),
)
