"""The code an exported script runs, kept as real modules (linted, tested, imported).

`optlab.script` embeds these functions' source in the scripts it writes, with
every definition they use; nothing here may need more than torch and the
standard library, which the embedding checks.
"""
