"""Where models logged before the tracking package import their serving code from.

A logged model carries a copy of its code file, and the copies written before PokeWatch's
tracking code became ``pokewatch_core/tracking/`` import ``FairPricer`` and ``json_ready``
from here; this keeps them loading (``mlflow.pyfunc.load_model``, ``mlflow models serve``).
"""

from pokewatch_core.tracking.fair_price import FairPricer as FairPricer
from pokewatch_core.tracking.fair_price import json_ready as json_ready
