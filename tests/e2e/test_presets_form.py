"""Issue 12 §2 in the real App: the *build memory bank* form's "Model preset" dropdown lists
every preset with its models, CPU time per image and download size (as
``preset_choice_label`` words them, whatever the measured numbers are); choosing a preset
marks its row in the preset table; "advanced" takes a hub id for the encoder and says which
models will run; an encoder that cannot work is refused under its field, with the fix.

Screenshots: ``test-artifacts/e2e-presets-{dropdown,chosen,advanced,invalid,misfit}.png``
(the dropdown one is ``docs/images/app-presets-dropdown.png`` in the README).
"""

from __future__ import annotations

import pytest
from test_operator_outputs import dialog_text, open_by_label
from test_workflow import LOAD_TIMEOUT_MS, dismiss_popovers, form_input, wait_for_grid

pytestmark = pytest.mark.e2e

BUILD = "NTT 3 · Build memory bank"
DINOV3_S = "facebook/dinov3-vits16-pretrain-lvd1689m"
MISSING = "./nowhere/dinov3_vits16_pretrain.pth"
CHOSEN = " ✓"  # operators/_forms.py CHOSEN_MARK: the chosen preset's row in the table


@pytest.fixture
def tagged_demo(demo_dataset):
    """The App's own dataset (the demo: a copy under another name can be switched back to
    the demo by the App's session while the form is open) with the references of its saved
    view tagged, so the form has nothing else to complain about; untagged afterwards."""
    from fiftyone import ViewField as F

    refs = demo_dataset.load_saved_view("references").filter_labels(
        "ground_truth", ~F("tags").contains("ntt:ref")
    )
    ids = refs.distinct("ground_truth.detections.id")
    before = demo_dataset.count_label_tags()
    demo_dataset.select_labels(ids=ids, fields="ground_truth").tag_labels("ntt:ref")
    try:
        yield demo_dataset
    finally:
        demo_dataset.select_labels(ids=ids, fields="ground_truth").untag_labels("ntt:ref")
        assert demo_dataset.count_label_tags() == before


def open_dataset(page, app_url, dataset) -> None:
    page.goto(f"{app_url}datasets/{dataset.name}")
    wait_for_grid(page, len(dataset))
    assert page.get_by_text(dataset.name, exact=True).count(), page.url


def preset_dropdown(page):
    """The "Model preset" select (a MUI combobox under its label)."""
    return page.locator(
        "xpath=//p[normalize-space()='Model preset']"
        "/ancestor::div[contains(@class,'MuiGrid-item')][1]//*[@role='combobox']"
    ).first


def dropdown_clip(page) -> dict:
    """The "Model preset" field with its open list, and a margin (the README's image)."""
    label = page.get_by_text("Model preset", exact=True).first.bounding_box()
    box = preset_dropdown(page).bounding_box()
    listbox = page.get_by_role("listbox").bounding_box()
    left, top = box["x"] - 16, label["y"] - 16
    right = max(box["x"] + box["width"], listbox["x"] + listbox["width"]) + 16
    bottom = listbox["y"] + listbox["height"] + 6
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def wait_for_dialog_text(page, *texts: str, absent: tuple[str, ...] = ()) -> str:
    """Wait until the form (re-resolved by the server after each change) shows ``texts``
    and none of ``absent``; returns the dialog's text."""
    page.wait_for_function(
        """([want, gone]) => {
            const text = [...document.querySelectorAll('[role=dialog]')]
                .map(d => d.innerText).join('\\n');
            return want.every(t => text.includes(t)) && !gone.some(t => text.includes(t));
        }""",
        arg=[list(texts), list(absent)],
        timeout=LOAD_TIMEOUT_MS,
    )
    page.wait_for_timeout(500)
    return dialog_text(page)


def choose_preset(page, name: str) -> None:
    from fiftyone_ntt.presets import preset_choice_label

    preset_dropdown(page).click()
    page.get_by_role("option", name=preset_choice_label(name), exact=True).click()
    wait_for_dialog_text(page, f"{name}{CHOSEN}")


def type_into(page, label: str, text: str) -> None:
    field = form_input(page, label)
    field.fill(text)
    field.blur()  # leave the field: the App validates what was touched


def test_preset_dropdown_and_advanced_models(page, app_url, tagged_demo, artifacts_dir):
    from fiftyone_ntt.config import PRESETS
    from fiftyone_ntt.presets import preset_choice_label, preset_summary

    page.set_viewport_size({"width": 1400, "height": 1700})  # the whole form in one picture
    open_dataset(page, app_url, tagged_demo)
    dismiss_popovers(page)
    open_by_label(page, BUILD)
    text = wait_for_dialog_text(page, f"default{CHOSEN}")
    assert "no label of" not in text and "coin\t12" in text, text  # the references are found

    # 1. the dropdown lists every preset with its models and costs
    preset_dropdown(page).click()
    options = page.get_by_role("listbox").get_by_role("option")
    options.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "e2e-presets-dropdown.png"), clip=dropdown_clip(page))
    listed = [options.nth(i).inner_text().strip() for i in range(options.count())]
    assert set(PRESETS) == {"paper", "default", "fast", "accurate"}
    assert listed == [preset_choice_label(name) for name in PRESETS], listed
    for name, text in zip(PRESETS, listed):
        summary = preset_summary(name)
        assert text.startswith(f"{name}: "), text
        assert summary["proposer_label"] in text and summary["encoder_label"] in text, text
        assert ("s/image" in text) or ("not measured" in text), text
        assert " GB" in text or "size unknown" in text, text
    assert "gated" in listed[list(PRESETS).index("accurate")]
    page.keyboard.press("Escape")
    page.wait_for_timeout(500)

    # 2. a non-default preset: the dropdown shows it and the table marks its row
    choose_preset(page, "fast")
    text = wait_for_dialog_text(page, preset_choice_label("fast"), absent=(f"default{CHOSEN}",))
    assert text.count(CHOSEN.strip()) == 1, text
    # the chosen line is shown whole, not cut off with "..."
    shown = preset_dropdown(page)
    assert shown.inner_text().strip() == preset_choice_label("fast")
    assert shown.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the chosen preset is cut"
    page.screenshot(path=str(artifacts_dir / "e2e-presets-chosen.png"))

    # 3. advanced: the preset's models as placeholders; a hub id for the encoder
    page.get_by_text("Advanced: choose each model", exact=True).first.click()
    wait_for_dialog_text(page, "Semantic encoder", "Mask proposer")
    fast = preset_summary("fast")
    assert form_input(page, "Semantic encoder").get_attribute("placeholder") == fast["encoder"]
    assert form_input(page, "Mask proposer").get_attribute("placeholder") == fast["proposer"]
    type_into(page, "Semantic encoder", DINOV3_S)
    text = wait_for_dialog_text(
        page, f"Runs: {fast['proposer_label']} (mask proposer) + DINOv3 ViT-S/16 (semantic encoder)"
    )
    assert "does not exist" not in text and "does not fit" not in text, text
    page.screenshot(path=str(artifacts_dir / "e2e-presets-advanced.png"))

    # 4. a relative path that is not there: refused under the field, with the fix (the App
    # reads relative paths from its server's folder, not the user's)
    type_into(page, "Semantic encoder", MISSING)
    text = wait_for_dialog_text(page, "does not exist there", absent=("Runs: ",))
    assert MISSING in text and "give an absolute path" in text and "hub id" in text, text
    page.screenshot(path=str(artifacts_dir / "e2e-presets-invalid.png"))

    # 5. a DINOv3 encoder on the paper preset (518 px is no multiple of its 16-px patch)
    type_into(page, "Semantic encoder", DINOV3_S)
    wait_for_dialog_text(page, "Runs: ", absent=("does not exist",))
    choose_preset(page, "paper")
    text = wait_for_dialog_text(page, "does not fit preset 'paper'", absent=("Runs: ",))
    assert DINOV3_S in text and "'accurate'" in text, text
    page.screenshot(path=str(artifacts_dir / "e2e-presets-misfit.png"))
