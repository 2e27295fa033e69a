"""The mel filterbank is audio-level code: the degradation labels need neither torch nor the model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from deepaq_core.audio.mel import mel_filterbank


def test_mel_filterbank_triangles_cover_the_band():
    fb = mel_filterbank(1024, 64, 24000, 50.0, 12000.0)
    assert fb.shape == (64, 513) and fb.dtype == np.float64
    assert fb.min() >= 0.0 and np.all(fb.max(axis=1) > 0.5)  # every band has a peak near 1
    centres = fb.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)  # bands rise in frequency
    freqs = np.linspace(0, 12000, 513)
    assert fb[:, freqs < 40].sum() == 0  # nothing below f_min


def test_teacher_labels_do_not_import_torch_or_the_model():
    code = "import sys, deepaq_core.degrade.teacher; print('torch' in sys.modules, 'deepaq_core.model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_the_model_keeps_its_name_for_the_same_filterbank():
    torch = __import__("pytest").importorskip("torch")
    from deepaq_core.model.compact import mel_filterbank as model_fb

    fb = model_fb(1024, 64, 24000, 50.0, 12000.0)
    assert isinstance(fb, torch.Tensor) and fb.dtype == torch.float32
    np.testing.assert_array_equal(fb.numpy(), mel_filterbank(1024, 64, 24000, 50.0, 12000.0).astype(np.float32))
