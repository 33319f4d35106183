"""Export as script: a run as one standalone Python file that needs only torch.

`surface_script` and `train_script` turn a run's config into the source of a
script that repeats the run with the textbook ``torch.optim`` loop
(``zero_grad()``, ``loss.backward()``, ``step()``, ``step(closure)`` for
L-BFGS, ``scheduler.step()``) and prints where each optimizer ended; its last
line is one JSON object ``{"runs": [...]}``. The numbers equal the engine's.

Nothing an exported script runs is kept in a string: the loops live in
`optlab.script.runtime`, and the surfaces, the model, the batch reader and
plugin optimizers in their own modules; `optlab.script.source` embeds their
source with everything they use (checked to need only torch and the standard
library). A user's formula is rendered from its validated syntax tree
(`optlab.script.formula`); the text the user typed never reaches the script
except inside string literals and comments, escaped.
"""

from optlab.script.surface import surface_script
from optlab.script.train import data_folder_hint, train_script

__all__ = ["data_folder_hint", "surface_script", "train_script"]
