"""Drawing of gridworld-pinpad states: an RGB image and a text picture."""

from __future__ import annotations

import numpy as np

CELL_PX = 32
PALETTE = np.array(
    [
        (230, 25, 75),  # 0 red
        (245, 130, 48),  # 1 orange
        (255, 225, 25),  # 2 yellow
        (60, 180, 75),  # 3 green
        (70, 240, 240),  # 4 cyan
        (0, 130, 200),  # 5 blue
        (145, 30, 180),  # 6 purple
        (240, 50, 230),  # 7 magenta
    ],
    dtype=np.uint8,
)
EMPTY_RGB, WALL_RGB, LINE_RGB, AGENT_RGB = (235, 235, 235), (60, 60, 60), (190, 190, 190), (0, 0, 0)


def colour_rgb(colour: int) -> np.ndarray:
    """RGB of a colour index (the palette repeats with darker shades beyond 8 colours)."""
    base = PALETTE[colour % len(PALETTE)].astype(np.int64)
    return (base * (0.6 ** (colour // len(PALETTE)))).astype(np.uint8)


def render_rgb(cells: np.ndarray, agent: int, grid_size: int, num_colours: int,
               task: np.ndarray, next_index: int) -> np.ndarray:
    """Top-down image: the grid, then a strip with the task (done colours ticked)."""
    g, px = grid_size, CELL_PX
    strip = max(px // 2, 12)
    width = g * px
    img = np.empty((g * px + strip + 4, width, 3), dtype=np.uint8)
    img[:] = 255
    for cell, content in enumerate(cells):
        r, c = divmod(cell, g)
        if content < 0:
            rgb = EMPTY_RGB
        else:
            rgb = WALL_RGB if content >= num_colours else colour_rgb(content)
        img[r * px : (r + 1) * px, c * px : (c + 1) * px] = rgb
        img[r * px, c * px : (c + 1) * px] = LINE_RGB
        img[r * px : (r + 1) * px, c * px] = LINE_RGB
    r, c = divmod(agent, g)
    yy, xx = np.mgrid[0:px, 0:px]
    disc = (yy - px / 2 + 0.5) ** 2 + (xx - px / 2 + 0.5) ** 2 <= (px * 0.3) ** 2
    img[r * px : (r + 1) * px, c * px : (c + 1) * px][disc] = AGENT_RGB
    # Task strip: one square per colour; done ones carry a dark bar, the next one a frame.
    box = max(min(width // max(len(task), 1), strip), 4)
    top = g * px + 4
    for i, colour in enumerate(task):
        x0 = i * box
        if x0 + box > width:
            break
        img[top : top + box - 2, x0 : x0 + box - 2] = colour_rgb(int(colour))
        if i < next_index:
            img[top + (box - 2) // 2 - 1 : top + (box - 2) // 2 + 1, x0 : x0 + box - 2] = 0
        elif i == next_index:
            img[top, x0 : x0 + box - 2] = 0
            img[top + box - 3, x0 : x0 + box - 2] = 0
    return img


def render_ansi(cells: np.ndarray, agent: int, grid_size: int, num_colours: int,
                task: np.ndarray, next_index: int) -> str:
    """Text picture: ``.`` empty, digits colours, ``#`` walls, ``@`` the agent."""
    chars = []
    for cell, content in enumerate(cells):
        ch = "." if content < 0 else "#" if content >= num_colours else str(content % 10)
        chars.append("@" if cell == agent else ch)
    lines = [" ".join(chars[r * grid_size : (r + 1) * grid_size]) for r in range(grid_size)]
    done = "-".join(str(c) for c in task[:next_index])
    todo = "-".join(str(c) for c in task[next_index:])
    lines.append(f"task [{done}|{todo}] ({next_index}/{len(task)} done)")
    return "\n".join(lines) + "\n"
