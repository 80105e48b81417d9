"""The comparison view: result layers alone, side by side, with a title on the canvas; and clearing it."""
import weakref
from typing import Callable, List, Optional, Sequence

from ._common import is_reconstruction

_HIDDEN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # viewer -> layers a comparison hid


def hide_all_but(viewer, keep: Sequence) -> None:
    """Hide every layer of the viewer except ``keep`` (a comparison view shows only its own layers);
    :func:`clear_results` shows the user's layers again."""
    kept = {id(layer) for layer in keep}
    hidden = _HIDDEN.setdefault(viewer, [])
    for layer in viewer.layers:
        if id(layer) not in kept and layer.visible:
            layer.visible = False
            if not is_reconstruction(layer):
                hidden.append(weakref.ref(layer))


def side_by_side_steps(viewer, layers: Sequence, title: str = "", count: Optional[int] = None
                       ) -> List[Callable[[], None]]:
    """Steps (for a :class:`~._workers.StepQueue`) that show ``layers`` alone, left to right (by
    translating them along X), show ``title`` as the canvas text overlay and fit the view; one layer
    per step (each redraws the canvas). The other layers are hidden, not removed. No grid mode:
    napari's grid takes every visible layer and building its views blocked the GUI for ~0.7 s.
    ``count``: how many layers ``layers`` will hold when the steps run (earlier steps may fill it)."""
    origin: list = []

    def place(i):
        layer = layers[i]
        ext = layer.extent.world
        width = float(ext[1][-1] - ext[0][-1])
        translate = list(layer.translate)
        if not origin:
            origin.append(translate[-1])
        translate[-1] = origin[0] + i * width * 1.04
        layer.translate = translate
        layer.visible = True

    steps = [lambda: hide_all_but(viewer, layers)]
    steps += [lambda i=i: place(i) for i in range(len(layers) if count is None else count)]
    return steps + [viewer.reset_view] + title_steps(viewer, title)


_GLYPHS_SHOWN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # viewer -> characters its canvas has rasterised
TITLE_SIZE = 9
NEW_GLYPHS_PER_STEP = 3


def title_steps(viewer, title: str) -> List[Callable[[], None]]:
    """Steps that show ``title`` as the canvas text overlay, for a :class:`~._workers.StepQueue`.

    vispy rasterises each character the first time it is drawn (about 6 ms each with software
    OpenGL): a new 40-character title froze the viewer for 160 ms in one draw. The title grows word
    by word, at most ``NEW_GLYPHS_PER_STEP`` new characters per step; once seen, a title is one step.
    """
    if not title:
        return []
    shown = _GLYPHS_SHOWN.setdefault(viewer, set())
    prefixes, new = [], set()
    words = title.split(" ")
    for i, word in enumerate(words):
        new |= set(word) - shown
        if len(new) >= NEW_GLYPHS_PER_STEP and i < len(words) - 1:
            prefixes.append(" ".join(words[:i + 1]))
            shown.update(new)
            new = set()
    prefixes.append(title)
    shown.update(new)

    def show(text: str) -> None:
        viewer.text_overlay.text = text
        viewer.text_overlay.font_size = TITLE_SIZE
        viewer.text_overlay.position = "top_left"
        viewer.text_overlay.visible = True
    return [lambda s=s: show(s) for s in prefixes]


def prewarm_title(viewer) -> None:
    """Draw an invisible-looking title once (a space), so the first real title does not pay for the
    font and shader set-up (~200 ms on the GUI thread). Leaves a text overlay in use alone."""
    from qtpy.QtCore import QTimer

    overlay = viewer.text_overlay
    if overlay.visible or overlay.text:
        return
    overlay.font_size = TITLE_SIZE
    overlay.text, overlay.visible = " ", True

    def done():
        if overlay.text == " ":
            overlay.visible, overlay.text = False, ""
    QTimer.singleShot(100, done)


def clear_results(viewer) -> int:
    """Remove every layer this plugin made (reconstructions, errors, predictions) and show again the
    layers a comparison view hid; the count removed."""
    made = [layer for layer in list(viewer.layers) if is_reconstruction(layer)]
    for layer in made:
        viewer.layers.remove(layer)
    if made:
        viewer.text_overlay.visible = False
    for ref in _HIDDEN.pop(viewer, []):
        layer = ref()
        if layer is not None and layer in viewer.layers:
            layer.visible = True
    return len(made)
