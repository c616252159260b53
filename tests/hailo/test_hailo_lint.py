"""`edgeact hailo lint`: each rule names the failing nodes and the cut that leaves them on the host."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeact.cli import main
from edgeact.errors import InputError
from edgeact.hailo.lint import RULES, lint_model


def graph(nodes, inputs, outputs, inits=(), opset=13):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def conv_then(op_nodes, out_shape):
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        *op_nodes,
    ]
    return graph(nodes, [vi("x", [1, 3, 8, 8])], [vi("y", out_shape)], [w])


def test_every_rule_says_where_it_comes_from():
    assert all(rule.source and rule.what for rule in RULES)


def test_gelu_as_erf_fails_and_the_cut_keeps_the_backbone():
    model = conv_then([helper.make_node("Erf", ["r"], ["y"], name="gelu_erf")], [1, 4, 8, 8])
    report = lint_model(model)
    assert not report.passed
    finding = next(f for f in report.findings if f.rule == "H003")
    assert finding.nodes == ["gelu_erf"]
    assert report.cut == {"start": ["conv"], "end": ["relu"], "kept": 2}


def test_rank5_attention_reshape_fails():
    shape = numpy_helper.from_array(np.array([1, 2, 2, 8, 8], np.int64), "s")
    model = conv_then([helper.make_node("Reshape", ["r", "s"], ["y"], name="heads")], [1, 2, 2, 8, 8])
    model.graph.initializer.append(shape)
    report = lint_model(model)
    assert any(f.rule == "H006" and f.nodes == ["heads"] for f in report.findings)


def test_dynamic_batch_and_uint8_input_fail():
    model = graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", ["batch", 3, 8, 8])], [vi("y", ["batch", 3, 8, 8])]
    )
    assert any(f.rule == "H005" for f in lint_model(model).findings)
    model = graph(
        [helper.make_node("Cast", ["x"], ["y"], name="cast", to=TensorProto.FLOAT)],
        [vi("x", [1, 3, 8, 8], TensorProto.UINT8)],
        [vi("y", [1, 3, 8, 8])],
    )
    rules = {f.rule for f in lint_model(model).findings}
    assert "H007" in rules and "H002" in rules


def test_opset_outside_the_range():
    model = graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [1, 3, 8, 8])], [vi("y", [1, 3, 8, 8])], opset=18
    )
    assert not lint_model(model).passed


def test_cli_exit_codes(tmp_path, hailo_exported, capsys):
    bundle, _, _ = hailo_exported
    assert main(["hailo", "lint", str(bundle / "hailo/split/edgeact_act.onnx")]) == 0
    bad = tmp_path / "bad.onnx"
    onnx.save(conv_then([helper.make_node("Erf", ["r"], ["y"], name="gelu_erf")], [1, 4, 8, 8]), bad)
    assert main(["hailo", "lint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "gelu_erf" in out and "end_node_names=['relu']" in out


def test_missing_or_corrupt_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no ONNX file"):
        lint_model(tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="is not an ONNX model"):
        lint_model(junk)
