"""Planted bugs and correct alternatives of Assignment 2: the proof that its graders are right.

Each entry is ``(unit, old text, new text[, old text, new text ...])``: edits of the solution notebook (every old
text must occur exactly once). A *mutant* plants one classic student bug: the engine must catch it in its own unit
and cost no other unit a point. An *alternative* solves a unit correctly but differently: it must get full marks.
"""

# a planted bug that the visible tests (what a student runs) must catch too
VISIBLY_CAUGHT = "KL without the teacher's entropy"

# name: (unit, old text, new text[, old text, new text ...])
MUTANTS = {
    # Part I: the frozen teacher
    "teacher parameters trainable": ("frozen_teacher", "        for param in self.model.parameters():\n"
                                     "            param.requires_grad = False\n        self.model.eval()\n",
                                     "        self.model.eval()\n"),
    "train() not overridden": ("frozen_teacher", "        super().train(mode)\n        self.model.eval()\n"
                               "        return self\n", "        return super().train(mode)\n"),
    "forward builds a graph": ("frozen_teacher", "        with torch.no_grad():\n            return self.model(x)",
                               "        return self.model(x)"),
    "train() returns nothing": ("frozen_teacher", "        self.model.eval()\n        return self\n",
                                "        self.model.eval()\n"),
    # Part II: the student initialization
    "variance not preserved": ("student_init", "                if var_preserving:\n                    "
                               "s.div_(math.sqrt((1 - alpha) ** 2 + alpha ** 2))\n", ""),
    "variance divisor without the square root": ("student_init", "s.div_(math.sqrt((1 - alpha) ** 2 + alpha ** 2))",
                                                 "s.div_((1 - alpha) ** 2 + alpha ** 2)"),
    "alpha weights swapped": ("student_init", "s.copy_((1 - alpha) * t + alpha * r)",
                              "s.copy_(alpha * t + (1 - alpha) * r)"),
    "neighborhood shrinks the teacher": ("student_init", "s.copy_(t + eps * r)", "s.copy_((1 - eps) * t + eps * r)"),
    "student left frozen": ("student_init", "    for param in student.parameters():\n"
                            "        param.requires_grad = True\n", ""),
    "student left in evaluation mode": ("student_init", "    student.train()\n    ### END SOLUTION",
                                        "    ### END SOLUTION"),
    # Part III: the loss
    "KL without the teacher's entropy": ("distillation_loss", "            if self.loss == \"KL\":\n"
                                         "                loss = loss + (target * teacher_log_probs[t]).sum(dim=-1)\n",
                                         ""),
    "teacher temperature ignored": ("distillation_loss", "teacher_output.detach() / self.teacher_temp",
                                    "teacher_output.detach() / self.student_temp"),
    "softmax over the batch": ("distillation_loss",
                               "F.log_softmax(student_output / self.student_temp, dim=-1)",
                               "F.log_softmax(student_output / self.student_temp, dim=0)"),
    "sum over pairs instead of the mean": ("distillation_loss", "        return torch.stack(losses).mean()",
                                           "        return torch.stack(losses).sum()"),
    "teacher output not detached": ("distillation_loss", "teacher_output.detach() / self.teacher_temp",
                                    "teacher_output / self.teacher_temp"),
    "teacher distribution cached from the first call": (
        "distillation_loss",
        "        teacher_log_probs = F.log_softmax(teacher_output.detach() / self.teacher_temp, dim=-1)"
        ".chunk(self.num_views)\n",
        "        if not hasattr(self, \"teacher_log_probs\"):  # the teacher is frozen: compute its distribution once\n"
        "            self.teacher_log_probs = F.log_softmax(teacher_output.detach() / self.teacher_temp, dim=-1)"
        ".chunk(self.num_views)\n"
        "        teacher_log_probs = self.teacher_log_probs\n"),
    "pair losses kept between calls": ("distillation_loss", "        losses = []\n        for t, s in self.pairs():\n",
                                       "        if not hasattr(self, \"losses\"):\n            self.losses = []\n"
                                       "        losses = self.losses\n        for t, s in self.pairs():\n"),
    # Part IV: the probes
    "k farthest neighbors": ("knn_probe", "distances.topk(k, dim=1, largest=False)", "distances.topk(k, dim=1)"),
    "dot-product similarity instead of distance": (
        "knn_probe", "    distances = torch.cdist(test_features, train_features)\n"
        "    nearest = distances.topk(k, dim=1, largest=False).indices",
        "    nearest = (test_features @ train_features.T).topk(k, dim=1).indices"),
    "only the nearest neighbor votes": ("knn_probe", "distances.topk(k, dim=1, largest=False)",
                                         "distances.topk(1, dim=1, largest=False)"),
    "ties go to the largest label": ("knn_probe", "    predictions = votes.argmax(dim=1)",
                                     "    predictions = votes.shape[1] - 1 - votes.flip(1).argmax(dim=1)"),
    "votes counted for the labels of the test set only": (
        "knn_probe",
        "    votes = F.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(dim=1)  # (N_test, labels)\n",
        "    neighbor_labels = train_labels[nearest]\n"
        "    votes = torch.stack([(neighbor_labels == c).sum(dim=1)\n"
        "                         for c in range(int(test_labels.max()) + 1)], dim=1)  # (N_test, labels)\n"),
    "linear probe trains one epoch": ("linear_probe", "    for _ in range(epochs):\n", "    for _ in range(1):\n"),
    "linear probe with as many classes as labels": ("linear_probe",
                                                    "layer = nn.Linear(features.shape[1], num_classes)",
                                                    "layer = nn.Linear(features.shape[1], int(labels.max()) + 1)"),
    "linear probe with SGD": ("linear_probe", "optimizer = torch.optim.AdamW(layer.parameters())",
                              "optimizer = torch.optim.SGD(layer.parameters(), lr=1e-3)"),
    "linear probe on the whole set at once": ("linear_probe", "for start in range(0, len(features), batch_size):",
                                              "for start in range(0, len(features), len(features)):",
                                              "batch = order[start:start + batch_size]", "batch = order"),
    "linear probe without a bias": ("linear_probe", "layer = nn.Linear(features.shape[1], num_classes)",
                                    "layer = nn.Linear(features.shape[1], num_classes, bias=False)"),
    "linear probe counts epochs from 1": ("linear_probe", "    for _ in range(epochs):\n",
                                          "    for epoch in range(1, epochs):\n"),
    "linear probe gradients never cleared": ("linear_probe",
                                             "            optimizer.zero_grad()\n            loss.backward()\n",
                                             "            loss.backward()\n"),
    # Part V: the loop
    "gradients never cleared": ("distill", "        optimizer.zero_grad()\n        loss.backward()\n",
                                "        loss.backward()\n"),
    "student not put in training mode": ("distill", "    student.train()\n    losses = []\n", "    losses = []\n"),
    "image-major views": ("distill", "        views = torch.cat(list(batch))",
                          "        views = torch.stack(list(batch), dim=1).flatten(0, 1)"),
    "teacher sees only the first view": ("distill", "        teacher_output = teacher(views)",
                                         "        teacher_output = teacher(batch[0]).repeat(len(batch), 1)"),
    "on_step gets the loss tensor": ("distill", "            on_step(losses[-1])", "            on_step(loss)"),
}

ALTERNATIVES = {
    "teacher frozen with requires_grad_ and an inference-mode forward": (
        "frozen_teacher",
        "        for param in self.model.parameters():\n            param.requires_grad = False\n"
        "        self.model.eval()\n",
        "        self.model.requires_grad_(False).eval()\n",
        "        with torch.no_grad():\n            return self.model(x)",
        "        with torch.inference_mode():\n            return self.model(x).clone()"),
    "train() without super()": ("frozen_teacher", "        super().train(mode)\n        self.model.eval()\n",
                                "        self.training = mode\n        self.model.eval()\n"),
    "initialization through state_dicts": (
        "student_init",
        """    with torch.no_grad():
        for s, t, r in zip(student.parameters(), teacher_model.parameters(), random_model.parameters()):
            if mode == "random":
                s.copy_(r)
            elif mode == "interpolated":
                s.copy_((1 - alpha) * t + alpha * r)
                if var_preserving:
                    s.div_(math.sqrt((1 - alpha) ** 2 + alpha ** 2))
            elif mode == "neighborhood":
                s.copy_(t + eps * r)
""",
        """    t_params, r_params = dict(teacher_model.named_parameters()), dict(random_model.named_parameters())
    scale = math.sqrt(2 * alpha ** 2 - 2 * alpha + 1) if var_preserving else 1.0
    new = {}
    for name in t_params:
        t, r = t_params[name].detach(), r_params[name].detach()
        new[name] = {"teacher": t, "random": r, "interpolated": ((1 - alpha) * t + alpha * r) / scale,
                     "neighborhood": t + eps * r}[mode].clone()
    student.load_state_dict(new, strict=False)
"""),
    "loss with F.kl_div and F.cross_entropy with soft targets": (
        "distillation_loss",
        """            target = teacher_log_probs[t].exp()
            loss = -(target * student_log_probs[s]).sum(dim=-1)
            if self.loss == "KL":
                loss = loss + (target * teacher_log_probs[t]).sum(dim=-1)
            losses.append(loss.mean())""",
        """            if self.loss == "KL":
                losses.append(F.kl_div(student_log_probs[s], teacher_log_probs[t], reduction="batchmean",
                                       log_target=True))
            else:
                losses.append(F.cross_entropy(student_log_probs[s], teacher_log_probs[t].exp()))"""),
    "loss over every pair at once with einsum": (
        "distillation_loss",
        """        student_log_probs = F.log_softmax(student_output / self.student_temp, dim=-1).chunk(self.num_views)
        teacher_log_probs = F.log_softmax(teacher_output.detach() / self.teacher_temp, dim=-1).chunk(self.num_views)
        losses = []
        for t, s in self.pairs():
            target = teacher_log_probs[t].exp()
            loss = -(target * student_log_probs[s]).sum(dim=-1)
            if self.loss == "KL":
                loss = loss + (target * teacher_log_probs[t]).sum(dim=-1)
            losses.append(loss.mean())
        return torch.stack(losses).mean()""",
        """        student_lp = torch.stack((student_output / self.student_temp).log_softmax(-1).chunk(self.num_views))
        with torch.no_grad():
            teacher_lp = torch.stack((teacher_output / self.teacher_temp).log_softmax(-1).chunk(self.num_views))
        target = teacher_lp.exp()  # (views, batch, out_dim)
        per_pair = -torch.einsum("tbd,sbd->tsb", target, student_lp).mean(-1)  # (teacher view, student view)
        if self.loss == "KL":
            per_pair = per_pair + (target * teacher_lp).sum(-1).mean(-1)[:, None]
        index = torch.tensor(self.pairs())
        return per_pair[index[:, 0], index[:, 1]].mean()"""),
    "k-NN with a stable sort, bincount votes and a loop": (
        "knn_probe",
        """    distances = torch.cdist(test_features, train_features)
    nearest = distances.topk(k, dim=1, largest=False).indices
    votes = F.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(dim=1)  # (N_test, labels)
    predictions = votes.argmax(dim=1)  # the first of equal maxima: the smallest label
    return (predictions == test_labels).float().mean().item()""",
        """    nearest = torch.argsort(torch.cdist(test_features, train_features), dim=1, stable=True)[:, :k]
    num_labels = int(train_labels.max()) + 1
    votes = torch.stack([torch.bincount(row, minlength=num_labels) for row in train_labels[nearest]])
    correct = sum(int(v.argmax() == y) for v, y in zip(votes, test_labels))
    return correct / len(test_labels)"""),
    "k-NN vote by torch.mode": (
        "knn_probe",
        "    votes = F.one_hot(train_labels[nearest], int(train_labels.max()) + 1).sum(dim=1)  # (N_test, labels)\n"
        "    predictions = votes.argmax(dim=1)  # the first of equal maxima: the smallest label\n",
        "    predictions = train_labels[nearest].mode(dim=1).values\n"),
    "linear probe with a DataLoader": (
        "linear_probe",
        """    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(layer(features[batch]), labels[batch])""",
        """    from torch.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(features, labels), batch_size=batch_size, shuffle=True, generator=generator)
    for _ in range(epochs):
        for x, y in loader:
            loss = nn.CrossEntropyLoss()(layer(x), y)"""),
    "linear probe clearing the gradients after each step, batches by split": (
        "linear_probe",
        """    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), batch_size):
            batch = order[start:start + batch_size]
            loss = F.cross_entropy(layer(features[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()""",
        """    for _ in range(epochs):
        for batch in torch.randperm(len(features), generator=generator).split(batch_size):
            F.cross_entropy(layer(features[batch]), labels[batch]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)"""),
    "loop with stacked views and set_to_none": (
        "distill",
        """        views = torch.cat(list(batch))
        teacher_output = teacher(views)
        student_output = student(views)
        loss = loss_fn(student_output, teacher_output)
        optimizer.zero_grad()""",
        """        views = torch.stack(list(batch)).flatten(0, 1)
        with torch.no_grad():
            teacher_output = teacher(views)
        loss = loss_fn(student(views), teacher_output)
        for p in student.parameters():
            p.grad = None"""),
}
