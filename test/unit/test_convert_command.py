"""``deeplab-ros-convert`` converts the user's files; pretrained models are deeplab-ros-models'."""

from pathlib import Path

import pytest

from deeplab_ros.tools import convert


def test_help_names_the_models_command_and_every_label_set(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main(['--help'])
    assert raised.value.code == 0
    text = capsys.readouterr().out
    assert 'deeplab-ros-models' in text and "'ade20k32'" in text


@pytest.mark.parametrize('option', ['--list', '--all'])
def test_pretrained_listing_and_fetching_are_not_convert_options(option: str) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main([option])
    assert raised.value.code == 2


def test_help_points_to_the_measurements_and_names_every_tflite_family(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        convert.main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert 'docs/benchmarks.md' in text and '%' not in text
    assert 'MobileNetV2, MobileNet-EdgeTPU or MobileNetV3 .tflite' in text


def test_output_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main(['--tflite', 'model.tflite'])
    assert raised.value.code == 2
    assert 'the following arguments are required: --output' in capsys.readouterr().err


def test_tflite_conversion_stores_the_input_size_asked_for(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from deeplab_ros.core.weights import convert as converters

    calls: list[tuple[Path, Path, dict]] = []

    def convert_tflite_file(path: Path, output: Path, **options: object) -> Path:
        calls.append((path, output, options))
        return output
    monkeypatch.setattr(converters, 'convert_tflite_file', convert_tflite_file)
    source, output = tmp_path / 'model.tflite', tmp_path / 'model.pt'
    assert convert.main(['--tflite', str(source), '--output', str(output),
                         '--input-size', '385']) == 0
    assert convert.main(['--tflite', str(source), '--output', str(output),
                         '--quantized-activations']) == 0
    assert calls == [(source, output, {'input_size': 385, 'quantized_activations': False}),
                     (source, output, {'input_size': 513, 'quantized_activations': True})]


@pytest.mark.parametrize('arguments, refused', [
    (['--tflite', 'm.tflite', '--labels', 'voc', '--output-stride', '8'],
     '--output-stride, --labels apply to --vainf only'),
    (['--tflite', 'm.tflite', '--num-classes', '21'], '--num-classes applies to --vainf only'),
    (['--vainf', 'm.pth', '--quantized-activations'],
     '--quantized-activations applies to --tflite only'),
])
def test_options_of_the_other_conversion_are_refused(
        arguments: list[str], refused: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        convert.main([*arguments, '--output', 'out.pt'])
    assert raised.value.code == 2
    assert refused in capsys.readouterr().err
