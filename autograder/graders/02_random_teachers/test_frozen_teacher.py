"""Part I: the frozen teacher (no gradient, evaluation mode whatever is asked, no graph, statistics never change)."""

from __future__ import annotations

import torch

from autograder.runtime.checks import expect, expect_close

from .cases import images, small_net, teacher_outputs

HINT = "In __init__ switch off requires_grad of every parameter and call self.model.eval()"


def test_no_parameter_requires_a_gradient(ns):
    """No parameter of the teacher requires a gradient"""
    teacher = ns.FrozenTeacher(small_net(1))
    trainable = [name for name, p in teacher.named_parameters() if p.requires_grad]
    expect(not trainable, f"these parameters of the teacher require a gradient: {trainable}", HINT)


def test_the_model_stays_in_evaluation_mode(ns):
    """The wrapped model is in evaluation mode after construction, after .train() and after .eval()"""
    net = small_net(1)
    net.train()
    teacher = ns.FrozenTeacher(net)
    expect(not net.training and not net[1].training, "after FrozenTeacher(model) the model is in training mode", HINT)
    for call in ("train", "eval"):
        returned = getattr(teacher, call)()
        expect(returned is teacher, f"teacher.{call}() must return the teacher itself, got {returned!r}",
               "train(mode) returns self, as nn.Module.train does")
        expect(not net.training and not net[1].training, f"after teacher.{call}() the model (its BatchNorm) is in "
               "training mode", "Override train(mode): whatever the mode, put self.model back into eval mode")
    teacher.train(True)
    expect(teacher.training, "teacher.train(True) must record the mode on the wrapper (teacher.training == True), "
           "as nn.Module.train does", "Call super().train(mode) (it sets self.training), then self.model.eval()")
    teacher.train(False)
    expect(not teacher.training, "teacher.train(False) must set teacher.training to False")


def test_batchnorm_statistics_never_change(ns):
    """Forward passes in 'training' never change the teacher's weights or BatchNorm statistics"""
    net = small_net(1)
    teacher = ns.FrozenTeacher(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    teacher.train()
    for seed in range(3):
        teacher(images(seed))
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    expect(not changed, f"a forward pass changed the teacher's {changed}",
           "BatchNorm in training mode updates its running statistics: the model must stay in eval mode")


def test_output_carries_no_gradient(ns):
    """The output has no graph, even for an input that requires a gradient"""
    teacher = ns.FrozenTeacher(small_net(1))
    x = images(0).requires_grad_(True)
    y = teacher(x)
    expect(not y.requires_grad and y.grad_fn is None, "the teacher's output carries a gradient (it has a grad_fn)",
           "Compute the forward pass inside `with torch.no_grad():`")


def test_outputs_equal_the_reference(ns, values):
    """The outputs equal the model's own in evaluation mode"""
    expect_close(teacher_outputs(ns), values["outputs"], "the teacher's outputs on fixed images after .train()",
                 "forward returns self.model(x), with the model in evaluation mode", atol=1e-5)
