"""PNG previews of images of any channel count."""

import numpy as np
from PIL import Image
import pytest

from jaxdebias import previews


@pytest.mark.parametrize("channels, mode", [(1, "L"), (2, "L"), (3, "RGB"), (4, "RGBA"), (5, "L")])
def test_previews_show_any_channel_count(tmp_path, channels, mode):
  image = np.random.default_rng(0).integers(0, 256, (4, 6, channels), dtype=np.uint8)
  previews.write_png(tmp_path / "x.png", image, scale=2)
  shown = Image.open(tmp_path / "x.png")
  assert (shown.mode, shown.size) == (mode, (12, 8))
  expected = image if channels in (3, 4) else image[..., 0]  # A PNG holds 1, 3 or 4 channels.
  np.testing.assert_array_equal(np.asarray(shown)[::2, ::2], expected)
