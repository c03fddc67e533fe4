"""Form helpers shared by the operators: field and bank choices, validation warnings,
progress reporting. Nothing heavy is imported here: the library modules that load torch
are imported inside the function that needs them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fiftyone as fo
import fiftyone.operators.types as types

from fiftyone_ntt.config import PRESETS
from fiftyone_ntt.fiftyone.app.scheduling import (
    enable_scheduling_help,
    scheduling_available,
    worker_command,
)
from fiftyone_ntt.fiftyone.banks.index import list_banks
from fiftyone_ntt.fiftyone.dataset.fields import detections_fields as dataset_detections_fields
from fiftyone_ntt.fiftyone.dataset.model_cache import describe_model, describe_models
from fiftyone_ntt.fiftyone.runs.claims import FieldLockedError
from fiftyone_ntt.fiftyone.runs.settings import available_devices, check_device
from fiftyone_ntt.presets import preset_choice_label, preset_table_markdown, resolve_config

#: Targets above this many samples are always delegated by the heavy operators (where this
#: FiftyOne offers scheduling: :func:`delegation`).
DELEGATE_ABOVE_SAMPLES = 50


def delegation(size: int, limit: int = DELEGATE_ABOVE_SAMPLES) -> bool | None:
    """The heavy operators' ``resolve_delegation``: a target of more than ``limit`` units
    (samples, frames, references) goes to a worker (only "Schedule" is offered), where this
    FiftyOne offers scheduling; otherwise None: the operator's own options, in which
    "Execute" is always there (a FiftyOne without scheduling would otherwise show no
    button at all). :func:`schedule_notice` says which applies."""
    return True if size > limit and scheduling_available() else None


def schedule_notice(
    inputs: types.Object, size: int, limit: int = DELEGATE_ABOVE_SAMPLES, unit: str = "samples"
) -> None:
    """The form's line about scheduling (the counterpart of :func:`delegation`): how to
    follow a scheduled run, or, where this FiftyOne does not offer scheduling, a warning
    that a large target runs inside the App server, and the setting that enables it."""
    if scheduling_available():
        inputs.view("schedule_hint", types.Notice(label=runs_hint()))
        return
    if size > limit:
        timeout = getattr(fo.config, "operator_timeout", None)
        stop = f" (FiftyOne stops it after {timeout} s)" if timeout else ""
        inputs.view(
            "schedule_unavailable",
            types.Warning(
                label=f"{size} {unit}: this runs inside the App server",
                description=(
                    f"This FiftyOne does not offer scheduling, so these {size} {unit} are "
                    f"processed now, in the App server, while the App waits{stop}. "
                    + enable_scheduling_help()
                ),
            ),
        )


def invalid(
    inputs: types.Object, prop: types.Property, name: str, message: str, box: bool = False
) -> None:
    """Mark ``prop`` invalid with ``message`` (shown under the field; execution is then
    refused before it starts). Several problems on one field are joined. ``box``: show the
    message in a warning box instead, for a property the form does not display."""
    prop.invalid = True
    previous = getattr(prop, "error_message", None)
    if previous and message not in previous:
        message = f"{previous}; {message}"
    prop.error_message = message
    if box:
        inputs.view(f"{name}_warning", types.Warning(label="Cannot run yet", description=message))


def detections_fields(ctx) -> list[str]:
    return dataset_detections_fields(ctx.dataset)


def field_choice(
    inputs: types.Object,
    ctx,
    name: str,
    label: str,
    description: str,
    choices: list[str],
    default: str | None = None,
) -> tuple[str | None, types.Property]:
    """A dropdown of field names (free text allowed, so a bad value can be reported)."""
    dropdown = types.AutocompleteView(label=label, description=description)
    for choice in choices:
        dropdown.add_choice(choice, label=choice)
    value = ctx.params.get(name, default)
    prop = inputs.str(name, label=label, description=description, default=default, view=dropdown)
    return value, prop


def default_gt_field(ctx) -> str | None:
    fields = detections_fields(ctx)
    for preferred in ("ground_truth", "gt", "detections"):
        if preferred in fields:
            return preferred
    return fields[0] if fields else None


def default_bank(ctx) -> str | None:
    """The most recently created bank of the dataset (the form's default)."""
    banks = sorted(list_banks(ctx.dataset), key=lambda b: b.get("created", ""))
    return banks[-1]["key"] if banks else None


def bank_choice(
    inputs: types.Object,
    ctx,
    name: str = "bank",
    description: str = "The bank whose classes are segmented (built with 'Build memory bank')",
) -> tuple[str | None, Any, list]:
    """A dropdown of the dataset's banks; (value, property, banks)."""
    banks = list_banks(ctx.dataset)
    choices = types.Dropdown(label="Memory bank")
    for bank in banks:
        shots = ", ".join(f"{c}: {n}" for c, n in bank["shots"].items())
        choices.add_choice(bank["key"], label=bank["key"], description=shots)
    default = default_bank(ctx)
    value = ctx.params.get(name, default)
    prop = inputs.enum(
        name,
        [b["key"] for b in banks] or [""],
        label="Memory bank",
        description=description,
        default=default,
        view=choices,
    )
    return value, prop, banks


def class_table(counts: dict[str, Any], header: tuple[str, ...]) -> str:
    """A markdown table: one row per class."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, value in counts.items():
        cells = value if isinstance(value, (list, tuple)) else (value,)
        lines.append("| " + " | ".join([str(name), *map(str, cells)]) + " |")
    return "\n".join(lines)


def progress_reporter(ctx, label: str, every_s: float = 0.0) -> Callable[[int, int], None]:
    """``progress(done, total)`` forwarding to ``ctx.set_progress`` at most every ``every_s``."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < every_s:
            return
        last[0] = now
        fraction = done / total if total else 1.0
        ctx.set_progress(progress=fraction, label=f"{label}: {done}/{total}")

    return report


def target_size(ctx) -> int:
    try:
        return len(ctx.target_view())
    except Exception:  # a form being filled in: no valid target yet
        return 0


def human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# --- errors -------------------------------------------------------------------------------


def library_errors() -> tuple[type[BaseException], ...]:
    """The exceptions the library raises with a worded message (bad input or state)."""
    errors: list[type[BaseException]] = [ValueError, KeyError, FileNotFoundError]
    errors.append(FieldLockedError)
    try:
        # deferred: torch (the model loaders) loads only when a run reports an error
        from fiftyone_ntt.models.checkpoints import ModelNotAvailableError

        errors.append(ModelNotAvailableError)
    except ImportError:  # an older library without it
        pass
    return tuple(errors)


def error_message(error: BaseException) -> str:
    """The message of a library error (a KeyError's without the quotes ``str`` adds)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


def reported(run: Callable[[Any], dict]) -> Callable[[Any, Any], dict]:
    """Wrap an operator's ``execute``: a worded library error becomes ``{"error": message}``
    in the output of an immediate run (no traceback in the App). A delegated run re-raises
    it, so the operation is marked failed with that message (``ntt_runs`` shows it)."""

    def execute(self, ctx) -> dict:
        try:
            return run(self, ctx)
        except library_errors() as error:
            if ctx.delegated:
                raise
            return {"error": error_message(error)}

    execute.__doc__ = run.__doc__
    execute.__name__ = run.__name__
    return execute


def error_output(ctx, title: str) -> types.Property | None:
    """The output of a run that ended with a worded error, or None when it did not."""
    message = (ctx.results or {}).get("error")
    if not message:
        return None
    outputs = types.Object()
    outputs.view("error", types.Error(label="Not done", description=str(message)))
    return types.Property(outputs, view=types.View(label=title))


# --- output tables -----------------------------------------------------------------------


def table(outputs: types.Object, name: str, label: str, columns: dict[str, str]) -> None:
    """A table in an operator's output: ``results[name]`` is a list of row dicts whose keys
    are ``columns`` (key -> column header)."""
    view = types.TableView(label=label)
    for key, header in columns.items():
        view.add_column(key, label=header)
    outputs.list(name, types.Object(), label=label, view=view)


def rows(mapping: dict[str, Any], key: str, value: str) -> list[dict[str, Any]]:
    """``{"a": 1}`` -> ``[{key: "a", value: 1}]`` (for :func:`table`)."""
    return [{key: k, value: v} for k, v in mapping.items()]


# --- shared form fields ------------------------------------------------------------------


def class_picker(
    inputs: types.Object, name: str, available: list[str], description: str
) -> types.Property:
    """The class picker every form uses: a list of names with the known classes offered."""
    choices = types.AutocompleteView(label="Classes", description=description)
    for label in available:
        choices.add_choice(label, label=label)
    return inputs.list(
        name, types.String(), default=None, label="Classes", description=description, view=choices
    )


def device_field(inputs: types.Object, ctx, problem: str | None = None) -> str:
    """The compute-device field, checked against the devices of this machine
    (:func:`~fiftyone_ntt.fiftyone.runs.settings.check_device`); ``problem``: what a form's
    plan already found wrong with it (the *Segment* form's run plan checks the device with
    that same function)."""
    names = available_devices()
    value = ctx.params.get("device") or "auto"
    prop = inputs.str(
        "device",
        default="auto",
        label="Device",
        description="auto (CUDA if available), cpu, cuda, cuda:N or mps; here: " + ", ".join(names),
    )
    if problem is None:
        try:
            check_device(value)
        except ValueError as error:
            problem = str(error)
    if problem:
        invalid(inputs, prop, "device", problem)
    return value


def test_models_notice(inputs: types.Object) -> None:
    """In test-model mode, say so (every form that runs models calls this)."""
    # deferred: torch (preflight imports the run plan and its loops)
    from fiftyone_ntt.fiftyone.app.preflight import test_models_notice as notice

    text = notice()
    if text:
        inputs.view("test_models", types.Warning(label="Test models", description=text))


def runs_hint() -> str:
    """How to follow a scheduled run (the open-source App has no runs list of its own)."""
    return (
        "Scheduled: a delegated worker runs it. Start one (same plugins folder and database "
        f"as the App) with: `{worker_command()}`; follow it with 'NTT 9 · Runs' or "
        "`fiftyone delegated list`."
    )


def model_choice(inputs: types.Object, ctx, default: str = "default") -> dict[str, Any]:
    """The preset dropdown (each choice shows its models, CPU time per image and download
    size), a table of every preset (the chosen one marked), "advanced" fields to choose each
    model freely (empty: the preset's, shown as placeholder), and which models will run.

    Returns:
        the props of the fields (``preset``, ``proposer``, ``encoder``) for error marks.
    """
    # the chosen preset's whole line stays readable in the closed dropdown (it wraps instead of
    # ending in "..."; the padding is the App's own)
    wrap = {".MuiSelect-select": {"whiteSpace": "normal", "padding": "0.45rem 2rem 0.45rem 1rem"}}
    dropdown = types.Dropdown(label="Model preset", componentsProps={"select": {"sx": wrap}})
    for name in PRESETS:
        dropdown.add_choice(name, label=preset_choice_label(name))
    props = {
        "preset": inputs.enum(
            "preset",
            list(PRESETS),
            default=default,
            label="Model preset",
            description="paper: as published; default: SAM 2.1-L + DINOv2-L; fast: small "
            "models and a coarser prompt grid, for CPUs; accurate: DINOv3-L (gated download)",
            view=dropdown,
        )
    }
    chosen = ctx.params.get("preset") or default
    inputs.md(mark_chosen_row(preset_table_markdown(), chosen), name="preset_table")
    inputs.bool(
        "advanced_models",
        default=False,
        label="Advanced: choose each model",
        description="Hub ids or local paths instead of the preset's models",
    )
    if ctx.params.get("advanced_models"):
        preset = PRESETS.get(chosen)
        props["proposer"] = inputs.str(
            "proposer",
            label="Mask proposer",
            description="SAM 2 / 2.1 (hub id, folder or Meta's .pt) or EdgeTAM (hub id or "
            "folder); empty: the preset's",
            view=types.TextFieldView(placeholder=preset.models.sam2 if preset else None),
        )
        props["encoder"] = inputs.str(
            "encoder",
            label="Semantic encoder",
            description="DINOv2 or DINOv3 ViT (hub id, folder or Meta's .pth); empty: the "
            "preset's. Segmenting with a bank always uses the bank's encoder",
            view=types.TextFieldView(placeholder=preset.models.dinov2 if preset else None),
        )
    config = _check_models(inputs, ctx.params, props)
    if config is not None and ctx.params.get("advanced_models"):
        inputs.md(
            f"Runs: {describe_model(config.models.sam2)} (mask proposer) + "
            f"{describe_model(config.models.dinov2)} (semantic encoder)",
            name="chosen_models",
        )
    return props


#: Appended to the chosen preset's name in the preset table.
CHOSEN_MARK = " ✓"
#: A hyphen the App does not break a line at ("Hiera-L" stays one word in a narrow column).
NO_BREAK_HYPHEN = "\u2011"


def mark_chosen_row(table: str, chosen: str) -> str:
    """The Markdown ``table`` as the form shows it: the first cell of the row of ``chosen``
    in bold and marked :data:`CHOSEN_MARK` (only that cell: bold text in every cell made the
    columns wrap in the App's narrow dialog), and no line breaks inside model names."""
    lines = table.split("\n")
    for i, line in enumerate(lines[2:], start=2):
        cells = [cell.strip().replace("-", NO_BREAK_HYPHEN) for cell in line.strip("| ").split("|")]
        if cells and cells[0] == chosen:
            cells[0] = f"**{chosen}{CHOSEN_MARK}**"
        lines[i] = "| " + " | ".join(cells) + " |"
    return "\n".join(lines)


def _check_models(inputs: types.Object, params: dict[str, Any], props: dict[str, Any]) -> Any:
    """Mark a model field invalid when its source cannot work (before anything loads): no
    such file, neither a path nor a hub id, a relative path, an encoder the preset's input
    sizes do not fit.

    Returns:
        the configuration the fields describe, or None when one is marked invalid.
    """
    # deferred: torch (the model loaders) loads only when this runs
    from fiftyone_ntt.models.checkpoints import classify_source

    for name, what in (("proposer", "mask proposer"), ("encoder", "semantic encoder")):
        value = params.get(name)
        if name in props and value:
            try:
                kind = classify_source(value, what)
                problem = None if kind == "hub" else _relative_path_problem(value, what)
            except FileNotFoundError as error:  # it looks like a path
                problem = _relative_path_problem(value, what, missing=True) or str(error)
            except (OSError, ValueError) as error:
                problem = str(error)
            if problem:
                invalid(inputs, props[name], name, problem)
                return None
    try:
        return config_from_form(params)
    except ValueError as error:
        if "encoder" in props and "does not fit" in str(error):
            invalid(inputs, props["encoder"], "encoder", _misfit_message(params))
        else:
            invalid(inputs, props["preset"], "preset", str(error))
        return None


def _misfit_message(params: dict[str, Any]) -> str:
    """The form's words for an encoder the preset's pinned input size does not fit (the
    library's message also offers ``reference_size``/``semantic_size`` values, which the
    form has no field for)."""
    # deferred: torch (the encoder families) loads only when this runs
    from fiftyone_ntt.models.dinov3 import encoder_family

    preset = params.get("preset") or "default"
    encoder = str(params.get("encoder")).strip()
    family = encoder_family(encoder)
    patch = 16 if family == "dinov3" else 14
    size = PRESETS[preset].reference_size
    follow = [name for name, config in PRESETS.items() if config.reference_size is None]
    return (
        f"encoder {encoder!r} ({family}, {patch}-px patches) does not fit preset {preset!r}: "
        f"its {size}-px input is no multiple of {patch}; choose a preset whose input size "
        f"follows the encoder ({', '.join(map(repr, follow))}), or leave the encoder empty"
    )


def _relative_path_problem(value: str, what: str, missing: bool = False) -> str | None:
    """Why a relative model path cannot be used from the App, or None for an absolute one.

    The App's server resolves a relative path against its own working folder (inside
    FiftyOne's installation), not the user's, and a scheduled run's worker may start in yet
    another one: only absolute paths mean the same file everywhere."""
    text = value.strip()
    path = Path(text).expanduser()
    if path.is_absolute():
        return None
    state = "does not exist there" if missing else "is relative"
    return (
        f"{what} {text!r} {state}: the App reads a relative path from its server's folder "
        f"({Path.cwd()}), not yours, and a scheduled run may start elsewhere; give an "
        "absolute path (or ~/...), or a Hugging Face hub id like 'facebook/dinov2-base'"
    )


def config_from_form(params: dict[str, Any]) -> Any:
    """The configuration the form's preset and advanced model fields describe."""
    advanced = bool(params.get("advanced_models"))
    return resolve_config(
        params.get("preset") or "default",
        proposer=(params.get("proposer") or None) if advanced else None,
        encoder=(params.get("encoder") or None) if advanced else None,
    )


def bank_models_line(inputs: types.Object, info: dict[str, Any] | None) -> None:
    """Which models segmenting with this bank runs (the bank's: its encoder must match)."""
    models = ((info or {}).get("config") or {}).get("models") or {}
    if not models:
        return
    inputs.md(f"Models (the bank's): {describe_models(models)}", name="bank_models")
