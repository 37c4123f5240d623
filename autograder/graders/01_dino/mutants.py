"""Planted bugs and correct alternatives of Assignment 1: the proof that its graders are right.

Each entry is ``(unit, old text, new text[, old text, new text ...])``: edits of the solution notebook (every old
text must occur exactly once). A *mutant* plants one classic student bug: the engine must catch it in its own unit
and cost no other unit a point. An *alternative* solves a unit correctly but differently: it must get full marks.
``tests/test_mutations.py`` grades all of them through every grading path.
"""

# a planted bug that the visible tests (what a student runs) must catch too
VISIBLY_CAUGHT = 'same-view pairs not skipped'

# name: (unit, old text, new text[, old text, new text ...])
MUTANTS = {
    # Part I
    "weight-norm length trainable": ("dino_head", "        length.requires_grad = False\n", ""),
    "no L2 normalization": ("dino_head", "x = F.normalize(self.mlp(x), dim=-1)", "x = self.mlp(x)"),
    "last layer with a bias": ("dino_head", "nn.Linear(bottleneck_dim, out_dim, bias=False)",
                               "nn.Linear(bottleneck_dim, out_dim)"),
    "ReLU instead of GELU": ("dino_head", "layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]",
                             "layers = [nn.Linear(in_dim, hidden_dim), nn.ReLU()]"),
    "one hidden layer too many": ("dino_head", "for _ in range(nlayers - 2):", "for _ in range(nlayers - 1):"),
    # Part II
    "same-view pairs not skipped": ("dino_loss", "                if s_idx == t_idx:\n                    continue",
                                    "                pass"),
    "center updated before the loss": (
        "dino_loss", "        teacher_probs = F.softmax(",
        "        self._update_center(teacher_output)\n        teacher_probs = F.softmax("),
    "no centering": ("dino_loss", "(teacher_output - self.center) / teacher_temp", "teacher_output / teacher_temp"),
    "center fed by the student": ("dino_loss", "        self._update_center(teacher_output)\n        return",
                                  "        self._update_center(student_output)\n        return"),
    "image-major views": (
        "dino_loss",
        "student_views = (student_output / self.student_temp).chunk(self.num_global + self.num_local)",
        "student_views = (student_output / self.student_temp).view(-1, self.num_global + self.num_local, "
        "student_output.shape[-1]).unbind(1)"),
    "teacher output not detached": ("dino_loss", "teacher_temp, dim=-1).detach()", "teacher_temp, dim=-1)"),
    "center as a parameter": ("dino_loss", 'self.register_buffer("center", torch.zeros(1, out_dim))',
                              "self.center = nn.Parameter(torch.zeros(1, out_dim), requires_grad=False)"),
    # Part III
    "the two global views identical": ("local_global_dataset", "        views = [self.global1(img), self.global2(img)]",
                                       "        views = [self.global1(img)] * 2"),
    "local views not normalized": ("local_global_dataset",
                                   "transforms.RandomResizedCrop(28, scale=(0.2, 0.8)), self.NORMALIZE])",
                                   "transforms.RandomResizedCrop(28, scale=(0.2, 0.8))])"),
    "local views not cropped": ("local_global_dataset", "transforms.RandomResizedCrop(28, scale=(0.2, 0.8))",
                                "transforms.RandomResizedCrop(28, scale=(1.0, 1.0))"),
    "no solarization": ("local_global_dataset", "transforms.RandomSolarize(threshold=0.5, p=0.2), ", ""),
    "global 1 not blurred": ("local_global_dataset", "self.global1 = transforms.Compose([*color_and_flips, "
                             "gaussian_blur, self.NORMALIZE])",
                             "self.global1 = transforms.Compose([*color_and_flips, self.NORMALIZE])"),
    # Part IV: schedules
    "learning rate without warm-up": ("schedules", "lr_schedule = CosineSchedule(5e-4, 2e-4, warmup_pct=0.1)",
                                      "lr_schedule = CosineSchedule(5e-4, 2e-4)"),
    "temperature decays instead of warming up": (
        "schedules", "teacher_temp_schedule = CosineSchedule(0.07, 0.07, warmup_pct=0.1, start_warmup_value=0.04)",
        "teacher_temp_schedule = CosineSchedule(0.04, 0.07)"),
    "weight decay from 0.04 to 0.02": ("schedules", "wd_schedule = CosineSchedule(0.02, 0.04)",
                                       "wd_schedule = CosineSchedule(0.04, 0.02)"),
    # Part IV: trainer
    "teacher gets all views": (
        "dino_trainer", "teacher_output = self.teacher(views[: self.num_global * batch.shape[1]])",
        "teacher_output = self.teacher(views)[: self.num_global * batch.shape[1]]"),
    "teacher momentum not scheduled": (
        "dino_trainer", "        self.teacher.momentum = float(self.teacher_ema_schedule(self.steps))\n", ""),
    "EMA direction reversed": ("dino_trainer", "self.teacher.momentum = float(self.teacher_ema_schedule(self.steps))",
                               "self.teacher.momentum = 1 - float(self.teacher_ema_schedule(self.steps))"),
    "weight-decay schedule never applied": (
        "dino_trainer", '            group["weight_decay"] = float(self.wd_schedule(self.steps))\n', ""),
    "schedules indexed by epoch": ("dino_trainer", 'group["lr"] = float(self.lr_schedule(self.steps))',
                                   'group["lr"] = float(self.lr_schedule(self.epoch))'),
    "optimizer also over the teacher": (
        "dino_trainer", "self.optim = torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad])",
        "self.optim = torch.optim.AdamW([p for p in self.student.parameters() if p.requires_grad]"
        " + list(self.teacher.parameters()))"),
    # Part VI
    "histogram without minlength": ("pseudo_labels", "torch.bincount(torch.cat(labels), minlength=out_dim)",
                                    "torch.bincount(torch.cat(labels))"),
    "histogram in train mode": ("pseudo_labels", "    model.eval()\n    loader = DataLoader(dataset,",
                                "    loader = DataLoader(dataset,"),
    "only the last batch counted": ("pseudo_labels", "labels.append(outputs.argmax(dim=-1).cpu())",
                                    "labels = [outputs.argmax(dim=-1).cpu()]"),
}

ALTERNATIVES = {
    "loss as one einsum over all view pairs": ("dino_loss", """        total_loss, n_terms = 0.0, 0
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
        "dino_loss",
        "                loss = torch.sum(-target * F.log_softmax(student, dim=-1), dim=-1)\n"
        "                total_loss = total_loss + loss.mean()",
        "                total_loss = total_loss + F.cross_entropy(student, target)"),
    "center of shape (out_dim,)": (
        "dino_loss",
        'self.register_buffer("center", torch.zeros(1, out_dim))',
        'self.register_buffer("center", torch.zeros(out_dim))',
        "batch_center = teacher_output.mean(dim=0, keepdim=True)", "batch_center = teacher_output.mean(dim=0)"),
    "older nn.utils.weight_norm API (warns)": (
        "dino_head",
        "nn.utils.parametrizations.weight_norm(nn.Linear(", "nn.utils.weight_norm(nn.Linear(",
        "length = self.last_layer.parametrizations.weight.original0", "length = self.last_layer.weight_g"),
    "head as a ModuleList with a loop": ("dino_head", "        self.mlp = nn.Sequential(*layers)",
                                         "        self.mlp = nn.ModuleList(layers)",
                                         "        x = F.normalize(self.mlp(x), dim=-1)",
                                         "        for layer in self.mlp:\n            x = layer(x)\n"
                                         "        x = F.normalize(x, dim=-1)"),
    "teacher called once per global view": (
        "dino_trainer", "            teacher_output = self.teacher(views[: self.num_global * batch.shape[1]])",
        "            teacher_output = torch.cat([self.teacher(view) for view in batch[: self.num_global]])"),
    "schedules with keyword arguments": (
        "schedules", "lr_schedule = CosineSchedule(5e-4, 2e-4, warmup_pct=0.1)",
        "lr_schedule = CosineSchedule(base_value=5e-4, final_value=2e-4, warmup_pct=0.1, start_warmup_value=0.0)",
        "ema_schedule = CosineSchedule(0.992, 0.996)", "ema_schedule = CosineSchedule(final_value=0.996, "
        "base_value=0.992)"),
    "views from one helper with RandomApply(p=1) blur": (
        "local_global_dataset", "        views = [self.global1(img), self.global2(img)]",
        "        views = [augment(img) for augment in (self.global1, self.global2)]",
        "self.global1 = transforms.Compose([*color_and_flips, gaussian_blur, self.NORMALIZE])",
        "self.global1 = transforms.Compose([*color_and_flips, transforms.RandomApply([gaussian_blur], p=1.0), "
        "self.NORMALIZE])"),
    "pseudo-label counts by one-hot sums": (
        "pseudo_labels", "    return torch.bincount(torch.cat(labels), minlength=out_dim)",
        "    return F.one_hot(torch.cat(labels), out_dim).sum(dim=0)"),
    # the epoch loop written by the student instead of the given one: no loss history, no checkpoints
    "trainer with its own epoch loop": (
        "dino_trainer", "        return loss\n        ### END SOLUTION",
        """        return loss

    def train(self, num_epochs, resume=False, on_epoch=None):
        total = len(self.data_loader) * num_epochs
        for schedule in (self.lr_schedule, self.wd_schedule, self.teacher_temp_schedule, self.teacher_ema_schedule):
            schedule.init(total)
        self.steps = 0
        for epoch in range(num_epochs):
            for batch in self.data_loader:  # (images, views, c, h, w) -> (views, images, c, h, w)
                self.training_step(batch.transpose(0, 1).to(self.device))
                self.steps += 1
        return self.teacher.model.encoder
        ### END SOLUTION"""),
    # as the official DINO code does it: the schedules' numpy floats go into the optimizer (and its checkpoint)
    "trainer that stores the schedules' numpy floats": (
        "dino_trainer",
        'group["lr"] = float(self.lr_schedule(self.steps))', 'group["lr"] = self.lr_schedule(self.steps)',
        'group["weight_decay"] = float(self.wd_schedule(self.steps))',
        'group["weight_decay"] = self.wd_schedule(self.steps)',
        "self.dino_loss(student_output, teacher_output, float(self.teacher_temp_schedule(self.steps)))",
        "self.dino_loss(student_output, teacher_output, self.teacher_temp_schedule(self.steps))",
        "self.teacher.momentum = float(self.teacher_ema_schedule(self.steps))",
        "self.teacher.momentum = self.teacher_ema_schedule(self.steps)"),
}
