"""A background cell's matplotlib figures: shown in its own output at its end, as a cell's are.

With the inline backend a cell's open figures are shown when a cell *execution*
ends (IPython's ``post_execute``). A ``%%background`` cell's execution ended when
it returned, before its code drew anything, so its figures were shown, and closed,
by whichever foreground cell ended next: in the wrong cell, and never in the card.
"""

from __future__ import annotations

import sys


def open_figures() -> frozenset[int]:
    """The numbers of the open pyplot figures (none when pyplot was never imported)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return frozenset()
    return frozenset(pyplot.get_fignums())


def show_new_figures(before: frozenset[int]) -> None:
    """Display the figures opened since ``before`` and close them, as the inline backend
    does at a cell's end, from the cell's thread (so into its card or its output).

    Only under the inline backend with its default ``close_figures``: an interactive
    backend (ipympl, Qt) shows figures itself, and figures kept open are shown again
    at every cell's end. A figure opened meanwhile by another cell running at the
    same time counts as this cell's: pyplot does not record which thread opened one.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    inline = sys.modules.get("matplotlib_inline.backend_inline")
    if pyplot is None or inline is None or "inline" not in str(pyplot.get_backend()):
        return
    import matplotlib
    from IPython.display import display

    if not matplotlib.is_interactive() or not inline.InlineBackend.instance().close_figures:
        return  # under ioff() a cell shows only what it calls plt.show() for
    for number in [n for n in pyplot.get_fignums() if n not in before]:
        # looked up first: pyplot.figure(n) of a figure closed meanwhile would open one
        if not pyplot.fignum_exists(number):
            continue
        figure = pyplot.figure(number)
        display(figure)
        # closed, the next cell's end (which shows every open figure) leaves it alone
        pyplot.close(figure)
