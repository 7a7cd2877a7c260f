"""How close minimatte is to the reference: the max |difference| behind the README's exactness figures.

    python benchmarks/parity.py

Golden files (spec deterministic weights, 64x96) need nothing else; the live comparison needs the
[reference] extra (torch + transformers). The tests assert bounds; this prints the measured values.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import minimatte  # noqa: E402
from helpers import REFERENCE, deterministic_state, input_a  # noqa: E402

LIVE_CASES = [("small", [(249, 513)]), ("small", [(640, 960)]), ("small", [(1000, 750)]),
              ("small", [(300, 460), (300, 460)]), ("base", [(249, 513), (249, 513)]), ("base", [(1000, 750)])]


def main():
    print("| comparison | max abs difference |\n|---|---|")
    for name in ("small", "base"):
        gold = np.load(REFERENCE / f"vitmatte_{name}_detweights_64x96.npz")
        out = minimatte.VitMatte.from_state_dict(deterministic_state(minimatte.PRESETS[name]))(
            input_a(), output_hidden_states=True, output_attentions=True)
        print(f"| golden {name}: alphas | {np.abs(out.alphas - gold['alphas_A']).max():.2g} |")
        if name == "small":
            hidden = max(np.abs(h - gold[f"hidden_state_{i}_A"]).max() for i, h in enumerate(out.hidden_states))
            attention = max(np.abs(out.attentions[i] - gold[f"attention_layer{i}_A"]).max() for i in (0, 2))
            print(f"| golden small: hidden states | {hidden:.2g} |\n| golden small: attention maps | {attention:.2g} |")
    from reference import hf_alphas, hf_model
    from test_reference_parity import hf_pixels, random_pair
    for name, sizes in LIVE_CASES:
        rng = np.random.default_rng(sum(h * w for h, w in sizes))  # the inputs of the parity tests
        pairs = [random_pair(rng, h, w) for h, w in sizes]
        images, trimaps = [p[0] for p in pairs], [p[1] for p in pairs]
        reference_pixels = hf_pixels(images, trimaps)
        batch = minimatte.preprocess(images, trimaps)
        state = deterministic_state(minimatte.PRESETS[name])
        reference = hf_alphas(hf_model(minimatte.PRESETS[name], state), reference_pixels)
        ours = minimatte.VitMatte.from_state_dict(state)(batch.pixel_values).alphas
        label = f"live {name} {len(sizes)}x{sizes[0][0]}x{sizes[0][1]}"
        print(f"| {label}: processor | {np.abs(batch.pixel_values - reference_pixels).max():.2g} |")
        print(f"| {label}: alphas | {np.abs(ours - reference).max():.2g} |", flush=True)


if __name__ == "__main__":
    main()
