"""Checks of a finished run folder, and of the CLI's errors, shared by the CLI tests."""

from safetensors.torch import load_file


def assert_inactive_zero(run):
    """Every weight outside the masks is exactly 0 in G, the EMA generator and D; returns the masks."""
    masks = load_file(run / "final" / "masks.safetensors")
    for fname, prefix in (("generator", "G."), ("generator_ema", "G."), ("discriminator", "D.")):
        w = load_file(run / "final" / f"{fname}.safetensors")
        for key, m in masks.items():
            if key.startswith(prefix):
                assert (w[key[2:]][~m.bool()] == 0).all(), (fname, key)
    return masks


def one_error_line(capsys) -> str:
    """The one line a refused command printed on stderr (the CLI's contract for user errors)."""
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]
