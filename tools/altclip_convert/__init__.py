"""The pieces of tools/convert.py (the command line), one job per module:

    config        config.json resolved as transformers.AltCLIPConfig does -> the format.md `config`
    schema        every tensor of the model: key, shape from the config, how each --dtype stores it
    lazy          tensors inside mapped files, read a few rows at a time (pages given back after)
    safetensors_file   model.safetensors, with the reference reader's checks
    torch_file    pytorch_model.bin without torch: a restricted unpickler, storages read lazily
    checkpoint    a checkpoint folder or hub id: small files, weights (sharded or not), checks
    encode        float32 rows -> the stored bytes of each dtype and layout (f16, bf16, q8, panels)
    writer        convert(): the schema's tensors encoded and written one at a time

It needs numpy and the standard library only, and never imports torch.
"""


class ConvertError(Exception):
    """An expected failure: bad input, unsafe pickle, mismatching config. No traceback."""
