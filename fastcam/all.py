"Everything a user needs: `from fastcam.all import *`."
from .hook import *
from .layers import *
from .targets import *
from .engine import *
from .methods import *
from .show import *
from .data import *
from .learner import *
from .callback import *
from .interpret import *
from .metrics import *
from .store import *
from .cluster import *
from .guidance import *
from .text import *
from .shortcuts import *
