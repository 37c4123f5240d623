"""The figures of the assignments (given code): they draw what the notebook's own code computed. Assignment 1:

* :func:`health_panels` — the health panels of several runs, one row each;
* :func:`knn_bars` — 1-NN accuracies side by side;
* :func:`reference_curve` — a reference run's validation accuracy against the images it has seen;
* :func:`retrieval_grid` — query images and their nearest training images, for several encoders;
* :func:`feature_map` — a 2-D map (t-SNE) of the features of several encoders, colored by tissue class;
* :func:`pseudo_label_ranks` — how many images each pseudo-label holds, sorted by rank;
* :func:`pseudo_label_heatmap` — pseudo-label x tissue class counts;
* :func:`pseudo_label_examples` — example images of the most used pseudo-labels.

Two helpers feed them: :func:`class_subsets` (a dataset cut by tissue class) and :func:`assign_pseudo_labels` (each
image's pseudo-label).

Assignment 2:

* :func:`spread_bars` — a run's probe accuracies as stars over the reference runs' mean ± sd and single seeds;
* :func:`batchnorm_statistics` — what enters each BatchNorm layer on real images against its running statistics.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch

from dinocourse.views import dataset_images, underlying

SHORT_NAMES = {"adipose": "adipose", "background": "backgr.", "debris": "debris", "lymphocytes": "lympho.",
               "mucus": "mucus", "smooth muscle": "muscle", "normal colon mucosa": "mucosa",
               "cancer-associated stroma": "stroma", "colorectal adenocarcinoma epithelium": "tumor"}
CLASS_COLORS = plt.get_cmap("tab10").colors


def class_names(dataset, short: bool = True) -> list[str]:
    """The tissue class names of a PathMNIST dataset (or subset), in label order."""
    labels = dataset.info["label"]
    names = [labels[str(i)] for i in range(len(labels))]
    return [SHORT_NAMES.get(n, n) for n in names] if short else names


def _labels(dataset) -> np.ndarray:
    """The labels of a (subset of a) medmnist dataset, in its order."""
    dataset, indices = underlying(dataset)
    labels = np.asarray(dataset.labels).reshape(-1)
    return labels if indices is None else labels[np.asarray(indices)]


def class_subsets(dataset) -> list[torch.utils.data.Subset]:
    """``dataset`` cut into one subset per tissue class (in label order)."""
    labels = _labels(dataset)
    return [torch.utils.data.Subset(dataset, np.flatnonzero(labels == c).tolist())
            for c in range(len(dataset.info["label"]))]


@torch.no_grad()
def assign_pseudo_labels(model, dataset, device, batch_size: int = 256) -> torch.Tensor:
    """Each image's pseudo-label: the argmax of ``model``'s output (in evaluation mode), in the dataset's order."""
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return torch.cat([model(images.to(device)).argmax(dim=-1).cpu() for images, _ in loader])


def health_panels(runs: dict):
    """The health panels (:meth:`dinocourse.health.TrainingHealth.plot`) of several runs, one row each."""
    fig, axes = plt.subplots(len(runs), 5, figsize=(18, 3.0 * len(runs)), squeeze=False)
    for row, (name, record) in zip(axes, runs.items(), strict=True):
        record.plot(name, axes=row)
    fig.tight_layout()
    return fig


def reference_curve(curve: dict, marks: dict[str, float], batch_size: int, your_steps: int):
    """A reference run's validation 1-NN accuracy against the images it has seen (``curve.json``), with other
    accuracies (``marks``: name -> fraction) as horizontal lines and the length of the student's run marked."""
    points = curve["curve"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([p["images_seen"] for p in points], [100 * p["val_knn"] for p in points], "o-", ms=3,
            color="tab:purple", label="reference run")
    for (name, value), color in zip(marks.items(), ["tab:orange", "tab:blue", "tab:green"], strict=False):
        ax.axhline(100 * value, ls="--", lw=1, color=color, label=f"{name}: {value:.1%}")
    ax.axvline(your_steps * batch_size, color="gray", lw=1, ls=":", label="the length of your run")
    recipe = curve["recipe"]
    ax.set_xlabel("training images seen (steps x batch size)")
    ax.set_ylabel("validation 1-NN accuracy (%)")
    ax.set_title(f"The reference run: {recipe['epochs']} epochs of batch {recipe['batch_size']} on "
                 f"{recipe['train_images']} images ({curve['train_seconds'] / 60:.0f} min on {curve['threads']} "
                 f"{curve['device']} threads)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def knn_bars(knn: dict[str, float], n_images: int, title: str):
    """Horizontal bars of 1-NN accuracies (fractions), in the order given."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(knn)))
    colors = ["gray", "tab:orange", "tab:blue", "tab:green", "tab:purple"][:len(knn)]
    ax.barh(list(knn), [100 * a for a in knn.values()], color=colors)
    for i, a in enumerate(knn.values()):
        ax.text(100 * a + 1, i, f"{a:.1%}", va="center")
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"1-NN accuracy on {n_images:,} images (%)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def retrieval_grid(features: dict[str, tuple[torch.Tensor, torch.Tensor]], queries, references, n_queries: int = 6,
                   k: int = 5, seed: int = 0):
    """For each encoder (name: (query features, reference features), L2-normalized): ``n_queries`` query images
    (the same for all) and their ``k`` nearest reference images by cosine similarity; a neighbor's frame is green
    when its tissue class is the query's, red otherwise."""
    q_images, r_images = dataset_images(queries).numpy(), dataset_images(references).numpy()
    q_labels, r_labels = _labels(queries), _labels(references)
    names = class_names(queries)
    rng = np.random.default_rng(seed)
    # one query of each of n_queries different classes
    picks = [int(rng.choice(np.flatnonzero(q_labels == c))) for c in rng.permutation(np.unique(q_labels))[:n_queries]]
    fig, axes = plt.subplots(n_queries, len(features) * (k + 1), figsize=(1.05 * len(features) * (k + 1),
                                                                           1.25 * n_queries), squeeze=False)
    for block, (model, (q_feat, r_feat)) in enumerate(features.items()):
        neighbors = (q_feat[picks] @ r_feat.T).topk(k, dim=-1).indices.numpy()
        for row, (query, found) in enumerate(zip(picks, neighbors, strict=True)):
            cells = axes[row, block * (k + 1):(block + 1) * (k + 1)]
            cells[0].imshow(q_images[query])
            cells[0].set_xlabel(names[q_labels[query]], fontsize=7, fontweight="bold")
            hits = 0
            for ax, ref in zip(cells[1:], found, strict=True):
                same = r_labels[ref] == q_labels[query]
                hits += same
                ax.imshow(r_images[ref])
                ax.set_xlabel(names[r_labels[ref]], fontsize=7, color="tab:green" if same else "tab:red")
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green" if same else "tab:red")
                    spine.set_linewidth(2.5)
            if row == 0:
                cells[0].set_title("query", fontsize=8)
                cells[(k + 1) // 2].set_title(model, fontsize=10, fontweight="bold")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"nearest training images of {n_queries} validation images (green: the same tissue class)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def embed_2d(features: torch.Tensor, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE embedding of features (cosine distances)."""
    from sklearn.manifold import TSNE

    x = features.numpy()
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed).fit_transform(x)


def feature_map(features: dict[str, torch.Tensor], dataset, seed: int = 0):
    """One t-SNE map per encoder of the features of ``dataset``'s images, colored by tissue class."""
    labels, names = _labels(dataset), class_names(dataset)
    fig, axes = plt.subplots(1, len(features), figsize=(4.2 * len(features), 4.4), squeeze=False)
    for ax, (model, feats) in zip(axes[0], features.items(), strict=True):
        xy = embed_2d(feats, seed)
        for c, name in enumerate(names):
            mine = labels == c
            ax.scatter(xy[mine, 0], xy[mine, 1], s=9, color=CLASS_COLORS[c], label=name)
        ax.set_title(model, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("t-SNE maps of the features (one dot per image, colored by its tissue class; the labels were "
                 "never used in training)", fontsize=10)
    fig.tight_layout()
    return fig


def pseudo_label_ranks(counts: dict[str, torch.Tensor]):
    """The images each pseudo-label holds, sorted from the most used, one line per model (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for name, c in counts.items():
        c = c.cpu().double()
        used = c[c > 0].sort(descending=True).values
        ax.plot(np.arange(1, len(used) + 1), 100 * used.numpy() / c.sum().item(), "o-", ms=3,
                label=f"{name}: {len(used)} of {len(c)} used")
    if max(int((c > 0).sum()) for c in counts.values()) > 20:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rank of the pseudo-label (1 = the most used)")
    ax.set_ylabel("share of the images (%)")
    ax.set_title("How the images spread over the pseudo-labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pseudo_label_heatmap(table: torch.Tensor, dataset, title: str, top: int = 24):
    """Counts of images per tissue class (rows) and pseudo-label (columns, the ``top`` most used, by rank)."""
    table = table.cpu().double()
    order = table.sum(0).argsort(descending=True)[:top]
    order = order[table[:, order].sum(0) > 0]
    shown = table[:, order].numpy()
    fig, ax = plt.subplots(figsize=(min(16, 1.6 + 0.42 * len(order)), 3.6))
    image = ax.imshow(shown, cmap="viridis", aspect="auto")
    for (r, c), value in np.ndenumerate(shown):
        if value:
            ax.text(c, r, int(value), ha="center", va="center", fontsize=6,
                    color="white" if value < 0.6 * shown.max() else "black")
    ax.set_yticks(range(len(table)), class_names(dataset), fontsize=8)
    ax.set_xticks(range(len(order)), [str(int(i)) for i in order], fontsize=7, rotation=90)
    ax.set_xlabel("pseudo-label (output dimension), the most used first")
    purity = shown.max(0).sum() / max(shown.sum(), 1)
    ax.set_title(f"{title}: images per tissue class and pseudo-label (a pseudo-label's most common class holds "
                 f"{purity:.0%} of its images)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.02)
    fig.tight_layout()
    return fig


def pseudo_label_examples(assigned: torch.Tensor, dataset, title: str, top: int = 6, per_label: int = 8):
    """Example images of the ``top`` most used pseudo-labels, given each image's pseudo-label (``assigned``)."""
    images, labels, names = dataset_images(dataset).numpy(), _labels(dataset), class_names(dataset)
    assigned = assigned.cpu().numpy()
    values, counts = np.unique(assigned, return_counts=True)
    best = values[np.argsort(-counts)][:top]
    fig, axes = plt.subplots(len(best), per_label, figsize=(1.0 * per_label, 1.15 * len(best)), squeeze=False)
    rng = np.random.default_rng(0)
    for row, label in zip(axes, best, strict=False):
        members = np.flatnonzero(assigned == label)
        shown = rng.choice(members, size=min(per_label, len(members)), replace=False)
        for ax, i in zip(row, shown, strict=False):
            ax.imshow(images[i])
            ax.set_xlabel(names[labels[i]], fontsize=6)
        row[0].set_ylabel(f"#{label}\n({len(members)})", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title}: images of the {len(best)} most used pseudo-labels (row: pseudo-label and how many "
                 "images it holds; under each image its tissue class)", fontsize=9)
    fig.tight_layout()
    return fig


# ---- Assignment 2 --------------------------------------------------------------------------------------------------
PROBE_NAMES = ("k-NN", "linear")


def spread_bars(yours: dict[str, dict], reference: dict[str, list[dict]], title: str, axes=None):
    """Your run's accuracies (name -> {"k-NN": a, "linear": a}) as stars, over the reference runs' mean (bar),
    standard deviation (error bar) and single seeds (dots): one panel per probe."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 3.3), sharey=True)
    names = list(yours)
    for ax, probe in zip(axes, PROBE_NAMES, strict=True):
        for i, name in enumerate(names):
            seeds = [100 * r[probe] for r in reference.get(name, [])]
            if seeds:
                mean, sd = np.mean(seeds), np.std(seeds, ddof=1) if len(seeds) > 1 else 0.0
                ax.bar(i, mean, 0.6, color="lightsteelblue", yerr=sd, capsize=4,
                       label=f"reference: mean ± sd of {len(seeds)} seeds" if i == 0 else None)
                ax.plot([i] * len(seeds), seeds, ".", color="tab:blue", alpha=0.7,
                        label="reference: one seed" if i == 0 else None)
                ax.text(i, 1, f"{mean:.1f}±{sd:.1f}", ha="center", va="bottom", fontsize=7)
            ax.plot(i, 100 * yours[name][probe], "*", ms=13, color="tab:red", label="your run" if i == 0 else None)
        ax.set_xticks(range(len(names)), [textwrap.fill(n, 16, break_on_hyphens=False) for n in names], fontsize=8)
        ax.set_ylim(0, 100)
        ax.set_title(f"{title}: {probe} probe", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend(fontsize=7, loc="upper left")
    return axes


def batchnorm_statistics(stats: list[dict], title: str):
    """What enters each BatchNorm layer on real images (per-channel mean and variance: dots) against the layer's
    running statistics (line), layer by layer (:func:`dinocourse.distillation.batchnorm_inputs`)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for ax, key in zip(axes, ("mean", "var"), strict=True):
        for i, layer in enumerate(stats):
            values = layer[key].numpy()
            ax.plot(np.full(len(values), i + 1) + np.random.default_rng(i).uniform(-0.25, 0.25, len(values)),
                    values, ".", ms=2, alpha=0.5, color="tab:blue", label="channels on real images" if i == 0 else None)
            ax.plot([i + 0.6, i + 1.4], [float(layer[f"running_{key}"].mean())] * 2, color="tab:red", lw=2,
                    label="running statistic (what evaluation mode uses)" if i == 0 else None)
        ax.set_xlabel("BatchNorm layer")
        ax.set_title(f"per-channel {'mean' if key == 'mean' else 'variance'} of the layer's input", fontsize=10)
        if key == "var":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
