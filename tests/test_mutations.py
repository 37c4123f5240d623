"""The part tests are not vacuous: each classic bug, planted in a copy of the solution notebook, makes them fail,
and correct implementations written differently pass them.

Each case rewrites one cell of the solution (the old text must occur exactly once, so a case cannot silently stop
applying when the solution changes) and runs the part tests against the copy through DINO_TEST_NOTEBOOK.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from dinocourse.data import REPO_ROOT as REPO
from dinocourse.notebook import SOLUTION_NOTEBOOK as SOLUTION

# name: (test file, old text, new text[, old text, new text ...])
MUTANTS = {
    "same-view pairs not skipped": ("test_loss.py", "                if s_idx == t_idx:\n                    continue",
                                    "                pass"),
    "center updated before the loss": (
        "test_loss.py", "        teacher_probs = F.softmax(",
        "        self._update_center(teacher_output)\n        teacher_probs = F.softmax("),
    "no centering": ("test_loss.py", "(teacher_output - self.center) / teacher_temp", "teacher_output / teacher_temp"),
    "image-major views": (
        "test_loss.py",
        "student_views = (student_output / self.student_temp).chunk(self.num_global + self.num_local)",
        "student_views = (student_output / self.student_temp).view(-1, self.num_global + self.num_local, "
        "student_output.shape[-1]).unbind(1)"),
    "teacher output not detached": ("test_loss.py", "teacher_probs = F.softmax((teacher_output - self.center) / "
                                    "teacher_temp, dim=-1).detach()",
                                    "teacher_probs = F.softmax((teacher_output - self.center) / teacher_temp, dim=-1)"),
    "weight-norm length trainable": ("test_model.py", "        length.requires_grad = False\n", ""),
    "no L2 normalisation": ("test_model.py", "x = F.normalize(self.mlp(x), dim=-1)", "x = self.mlp(x)"),
    "teacher gets all views": (
        "test_trainer.py", "teacher_output = self.teacher(views[: self.num_global * batch.shape[1]])",
        "teacher_output = self.teacher(views)[: self.num_global * batch.shape[1]]"),
    "teacher momentum not scheduled": (
        "test_trainer.py", "        self.teacher.momentum = float(self.teacher_ema_schedule(self.steps))\n", ""),
    "weight-decay schedule never applied": (
        "test_trainer.py", '            group["weight_decay"] = float(self.wd_schedule(self.steps))\n', ""),
    "optimizer also over the teacher": (
        "test_trainer.py",
        "self.optim = torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad])",
        "self.optim = torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad]"
        " + list(self.teacher.parameters()))"),
    "the two global views identical": ("test_views.py", "        views = [self.global1(img), self.global2(img)]",
                                       "        views = [self.global1(img)] * 2"),
    "local views not normalised": ("test_views.py",
                                   "transforms.RandomResizedCrop(28, scale=(0.2, 0.8)), self.NORMALIZE])",
                                   "transforms.RandomResizedCrop(28, scale=(0.2, 0.8))])"),
    "local views not cropped": ("test_views.py", "transforms.RandomResizedCrop(28, scale=(0.2, 0.8))",
                                "transforms.RandomResizedCrop(28, scale=(1.0, 1.0))"),
    "learning rate without warm-up": ("test_schedules.py", "lr_schedule = CosineSchedule(5e-4, 2e-4, warmup_pct=0.1)",
                                      "lr_schedule = CosineSchedule(5e-4, 2e-4)"),
    "temperature decays instead of warming up": (
        "test_schedules.py",
        "teacher_temp_schedule = CosineSchedule(0.07, 0.07, warmup_pct=0.1, start_warmup_value=0.04)",
        "teacher_temp_schedule = CosineSchedule(0.04, 0.07)"),
    "histogram without minlength": ("test_evaluation.py", "torch.bincount(torch.cat(labels), minlength=out_dim)",
                                    "torch.bincount(torch.cat(labels))"),
    "histogram in train mode": ("test_evaluation.py", "    model.eval()\n    loader = DataLoader(dataset,",
                                "    loader = DataLoader(dataset,"),
}

ALTERNATIVES = {
    "loss as one einsum over all view pairs": ("test_loss.py", """        total_loss, n_terms = 0.0, 0
        for t_idx, target in enumerate(teacher_views):
            for s_idx, student in enumerate(student_views):
                if s_idx == t_idx:
                    continue  # we skip cases where student and teacher operate on the same view
                loss = torch.sum(-target * F.log_softmax(student, dim=-1), dim=-1)
                total_loss = total_loss + loss.mean()
                n_terms += 1
        self._update_center(teacher_output)
        return total_loss / n_terms""", """        log_p = F.log_softmax(torch.stack(student_views), dim=-1)
        ce = -torch.einsum("gbk,vbk->gvb", torch.stack(teacher_views), log_p).mean(-1)  # (G, V)
        off_diagonal = ~torch.eye(self.num_global, len(student_views), dtype=torch.bool)
        self._update_center(teacher_output)
        return ce[off_diagonal].mean()"""),
    "loss with F.cross_entropy and soft targets": (
        "test_loss.py",
        "                loss = torch.sum(-target * F.log_softmax(student, dim=-1), dim=-1)\n"
        "                total_loss = total_loss + loss.mean()",
        "                total_loss = total_loss + F.cross_entropy(student, target)"),
    "centre of shape (out_dim,)": (
        "test_loss.py",
        'self.register_buffer("center", torch.zeros(1, out_dim))',
        'self.register_buffer("center", torch.zeros(out_dim))',
        "batch_center = teacher_output.mean(dim=0, keepdim=True)", "batch_center = teacher_output.mean(dim=0)"),
    "head as a ModuleList with a loop": ("test_model.py", """        self.mlp = nn.Sequential(*layers)""",
                                         """        self.mlp = nn.ModuleList(layers)
        self.mlp.forward = lambda x: [x := layer(x) for layer in self.mlp][-1]"""),
    "teacher called once per global view": (
        "test_trainer.py", """            teacher_output = self.teacher(views[: self.num_global * batch.shape[1]])""",
        """            teacher_output = torch.cat([self.teacher(view) for view in batch[: self.num_global]])"""),
}


def run_part_tests(tmp_path, test_file, *edits):
    """Apply the (old, new) edits to a copy of the solution and run one part's tests against it."""
    nb = nbformat.read(SOLUTION, as_version=4)
    for old, new in zip(edits[::2], edits[1::2], strict=True):
        hits = [cell for cell in nb.cells if old in cell.source]
        assert len(hits) == 1 and hits[0].source.count(old) == 1, f"the case no longer matches the solution: {old}"
        hits[0].source = hits[0].source.replace(old, new)
    path = tmp_path / "variant.ipynb"
    nbformat.write(nb, path)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", f"tests/{test_file}"],
                          cwd=REPO, env={**os.environ, "DINO_TEST_NOTEBOOK": str(path)}, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("name", MUTANTS)
def test_a_planted_bug_is_caught(tmp_path, name):
    result = run_part_tests(tmp_path, *MUTANTS[name])
    assert result.returncode == 1, f"'{name}' was not caught:\n{result.stdout[-2000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALTERNATIVES)
def test_a_correct_alternative_passes(tmp_path, name):
    result = run_part_tests(tmp_path, *ALTERNATIVES[name])
    assert result.returncode == 0, f"'{name}' failed:\n{result.stdout[-3000:]}"
