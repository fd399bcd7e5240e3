"""scripts/distill_predictor.py: fitted styles of training paintings, distilled into the predictor's skip layer."""

import pytest
import torch

from fastnst.checkpoint import load_network

from conftest import load_script, write_photo

distill = load_script("distill_predictor")


def test_the_ridge_recovers_a_shared_correction_better_than_the_mean_shift():
    generator = torch.Generator().manual_seed(0)
    hidden = torch.rand(64, 12, generator=generator)
    planted, shift = torch.randn(12, 5, generator=generator), torch.randn(5, generator=generator)
    deltas = hidden @ planted + shift + 0.01 * torch.randn(64, 5, generator=generator)
    ridge, scores = distill.choose_ridge(hidden, deltas, ridges=(0.01, 1.0, 100.0))
    assert ridge == 0.01 and scores["0.01"] > 0.99 > scores["shift"]  # a correction that varies is not a shift
    a, c = distill.ridge_fit(hidden, deltas, ridge)
    assert (hidden @ a + c - deltas).abs().max() < 0.05
    with pytest.raises(ValueError, match="at least 2"):
        distill.choose_ridge(hidden[:1], deltas[:1])


def test_harvest_resumes_and_apply_moves_the_predictions_towards_the_fits(arbitrary_ckpt, tmp_path, capsys):
    paintings = [write_photo(tmp_path / "paintings" / f"p{i}.png", size=(96, 80), seed=40 + i) for i in range(3)]
    (tmp_path / "paintings" / "broken.jpg").write_bytes(b"not a painting")
    net = load_network(arbitrary_ckpt).net.eval()
    harvest = tmp_path / "harvest.pt"
    lines = []
    samples = distill.harvest(
        net, [*paintings, tmp_path / "paintings" / "broken.jpg"], harvest, steps=3, log=lines.append
    )
    assert len(samples["paths"]) == 3 and any(line.startswith("skipped") and "broken.jpg" in line for line in lines)
    assert all(not torch.equal(f, p) for f, p in zip(samples["fit"], samples["pred"]))
    lines.clear()
    assert len(distill.harvest(net, paintings, harvest, steps=3, log=lines.append)["paths"]) == 3 and not lines
    with pytest.raises(ValueError, match="3 fit steps, not 5"):
        distill.harvest(net, paintings, harvest, steps=5)

    out = tmp_path / "distilled.safetensors"
    assert distill.main(["apply", str(harvest), "--ckpt", str(arbitrary_ckpt), "-o", str(out)]) == 0
    new = load_network(out)
    stats, fitted = torch.stack(samples["stats"]), torch.stack(samples["fit"])
    with torch.no_grad():
        before, after = net.embed_statistics(stats), new.net.embed_statistics(stats)
    assert (after - fitted).norm() < 0.7 * (before - fitted).norm()  # (stored in fp16, as shipped)
    old_state, new_state = net.state_dict(), new.net.state_dict()
    assert new.net.config.predictor_skip and not net.config.predictor_skip
    assert set(new_state) - set(old_state) == {"style_predictor.skip.weight", "style_predictor.skip.bias"}
    assert all(torch.equal(old_state[k].half(), new_state[k].half()) for k in old_state)  # nothing else moves
    assert "skip layer learnt from 3-step fits of 3 training paintings" in new.info.card["recipe"]
    assert distill.main(["apply", str(harvest), "--ckpt", str(arbitrary_ckpt), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err

    # again, on the network with the skip, with a harvest made with it beside the first: a new skip
    more = distill.harvest(new.net, paintings[:2], tmp_path / "more.pt", steps=3, log=lines.append)
    assert all(not torch.allclose(p, q) for p, q in zip(more["pred"], samples["pred"]))  # the skip predicted
    again = tmp_path / "again.safetensors"
    assert distill.main(["apply", str(harvest), str(tmp_path / "more.pt"), "--ckpt", str(out), "-o", str(again)]) == 0
    twice = load_network(again)
    assert twice.info.card["recipe"].count("skip layer learnt") == 1
    assert "fits of 5 training paintings" in twice.info.card["recipe"]

    # --update: the skip stays and the correction of its predictions on other paintings is added to it
    no_skip = ["apply", str(harvest), "--update", "--ckpt", str(arbitrary_ckpt), "-o", str(tmp_path / "x")]
    assert distill.main(no_skip) == 2
    assert "no skip to update" in capsys.readouterr().err
    updated = tmp_path / "updated.safetensors"
    assert distill.main(["apply", str(harvest), "--update", "--ckpt", str(again), "-o", str(updated)]) == 0
    third = load_network(updated)
    recipe = third.info.card["recipe"]
    assert "fits of 5 training paintings" in recipe and "then updated from 3-step fits of 3 more" in recipe
    with torch.no_grad():
        before, after = twice.net.embed_statistics(stats), third.net.embed_statistics(stats)
    assert (after - fitted).norm() < (before - fitted).norm()
    # fits that the skip already predicts correct nothing: the skip stays as it is (a new one would not)
    with torch.no_grad():
        exact = {**samples, "pred": list(before), "fit": list(before)}
    skip = twice.net.style_predictor.skip.weight.detach().clone()
    kept = distill.apply(twice.net, exact, update=True, log=lines.append)[0].style_predictor.skip
    assert kept is not twice.net.style_predictor.skip and torch.allclose(kept.weight, skip, atol=1e-6)
    anew = distill.apply(twice.net, exact, log=lines.append)[0].style_predictor.skip
    assert not torch.allclose(anew.weight, skip, atol=1e-6)  # without --update, the skip is learnt anew
    assert torch.equal(twice.net.style_predictor.skip.weight, skip)  # the network given is left as it was

    other = {**samples, "pred": [p + 0.5 for p in samples["pred"]]}
    with pytest.raises(ValueError, match="another predictor"):
        distill.apply(net, other)
