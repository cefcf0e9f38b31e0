"""Every option, declared once: its name, type, default, help, checks, and where it is taken.

An :class:`Option` says which settings objects hold it (its ``scopes``) and which ``mlml-tf``
commands take it (its ``commands``). From the one table :data:`OPTIONS` come

- :class:`RunConfig` (scope ``run``): the settings of one run, whose digest names its folder;
- :class:`GridOptions` (scope ``grid``): what every run of a grid shares (``mlml-tf run``);
- :class:`FitSettings` (scope ``fit``): how ``mlml-tf train`` trains a model of one's own data;
- the command line's arguments and the settings objects built from them
  (:mod:`mlml_tf.cli.arguments`).

An option of the grid and of a run passes from :class:`GridOptions` to each :class:`RunConfig`
(:func:`shared`); one of a fit and of a run, from :class:`FitSettings` to its head's run. A new
option is one :class:`Option` in :data:`OPTIONS`. The defaults are the original's
(docs/original.md sections 5 to 7) unless the help says otherwise.

Every option of a run or of the grid says how it stands to the original (its ``faithful``):
the value the original computed with, :data:`ANY` where no value changes what the original
computed, or an :class:`Original` where that depends on the data folder or on another field;
:mod:`mlml_tf.faithful` reads it for ``mlml-tf run --faithful``.

No TensorFlow here: the command line reads this table to parse its arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mlml_tf.errors import DataError
from mlml_tf.files.layout import GLOBAL_WEIGHTS
from mlml_tf.files.protocols import PAPER, PROTOCOLS, protocol
from mlml_tf.labels.missing import FPC_DEFAULT_COUNT
from mlml_tf.methods.method import params_key
from mlml_tf.methods.registry import METHODS, PAPER_METHODS, method, method_params
from mlml_tf.runs.names import NAMING

#: Marks an option that has no default: a run's method, ratio and fold.
REQUIRED = dataclasses.MISSING

# ------------------------------------------------------------------------------------ choices

#: How images are scaled: the original's (x / 255 - mean) / std with ImageNet statistics, or
#: Keras' Inception scaling to [-1, 1] (docs/original.md section 5).
SCALINGS: tuple[str, ...] = ("imagenet", "inception")
#: How images are brought to the backbone's input size: as the original's
#: ``skimage.transform.resize`` (anti-aliased when shrinking), ``tf.image.resize`` without
#: anti-aliasing, or with its own, what ``keras.layers.Resizing(antialias=True)`` computes.
RESIZES: tuple[str, ...] = ("skimage", "bilinear", "antialias")
#: The resizes a saved model of one's own data can do with Keras' own ``Resizing`` layer.
OWN_RESIZES: tuple[str, ...] = ("antialias", "bilinear")
#: How the feature cache stores the backbone's output: float16 (11 significant bits, half the
#: file and memory) or float32, as the backbone computed it.
FEATURE_DTYPES: tuple[str, ...] = ("float16", "float32")
#: The inverse DCT of TensorFlow's JPEG decoder: its default (libjpeg's fast integer IDCT), or
#: libjpeg's accurate integer IDCT, whose pixels are those of Pillow and OpenCV, the original's
#: decoders (docs/original.md section 5).
JPEG_IDCTS: tuple[str, ...] = ("fast", "accurate")
#: Heads: "original" flattens the feature map (38,400 inputs for Inception-ResNet-v2 at 224);
#: "gap" averages it over space first (1,536 inputs), then the same dense stack.
HEADS: tuple[str, ...] = ("original", "gap")
#: Where CB-WCE's confidence weights come from: counted over the observed labels, over the
#: complete ones (docs/original.md section 4), or estimated from the observed ones
#: (docs/methods.md section 6).
CB_SOURCES: tuple[str, ...] = ("observed", "oracle", "file", "estimated", "oracle-loo")
#: Those a model of one's own data can use: it has no complete labels.
OWN_CB_SOURCES: tuple[str, ...] = ("observed", "estimated")
#: Those the demo compares (``mlml-tf demo --cb-sources``): it has no file of the authors.
DEMO_CB_SOURCES: tuple[str, ...] = tuple(s for s in CB_SOURCES if s != "file")
#: Where the class-balance weight P comes from (docs/original.md section 6).
POS_WEIGHT_SOURCES: tuple[str, ...] = ("run", "original")
#: Learning-rate schedules: the original's constant rate, or the decay its code built.
LR_SCHEDULES: tuple[str, ...] = ("constant", "exponential-decay")
#: Steps per epoch: floor(N / B) of the run's own rows, or of ``train1_0.0.csv`` as the original.
STEP_COUNTS: tuple[str, ...] = ("run", "original")
#: How the loss of a run is computed: from logits (stable), from clipped probabilities, or as
#: the original: CE from logits, IM-WCE and CB-WCE from clipped probabilities.
LOSS_INPUTS: tuple[str, ...] = ("logits", "probabilities", "original")
#: ``tf.distribute`` strategies.
STRATEGIES: tuple[str, ...] = ("default", "mirrored", "multiworker", "tpu")
#: The command line's words for a setting that is on, off, or left to the machine.
SWITCH = {"auto": "auto", "on": True, "off": False}
#: The default time between two checkpoints of a training (at epoch ends): a kill loses at most
#: this much training; a checkpoint of the heads of a fold's runs side by side is their weights
#: and Adadelta's two accumulators (0.7 GB for the demo's 12 runs, 12 GB for the paper's heads).
BACKUP_MINUTES = 10.0
#: The shuffle buffer of the original's training and test streams (docs/original.md section 7).
ORIGINAL_SHUFFLE_BUFFER = 100


# -------------------------------------------------------------------------------- value kinds


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of value with limits: ``cast`` reads a number from text, ``accept`` checks it.

    :meth:`parse` is an argparse ``type`` whose messages name the value ("seed '-1' is outside
    [0, 2**32 - 1]"); :meth:`problem` checks a value given in Python.
    """

    cast: Callable
    accept: Callable[[Any], bool]
    what: str
    kind: str
    limits: str

    def parse(self, text: str):
        try:
            value = self.cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{self.what}{text!r} is not {self.kind}") from None
        if not self.accept(value):
            raise argparse.ArgumentTypeError(f"{self.what}{text!r} {self.limits}")
        return value

    def problem(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"is not {self.kind}"
        if self.cast is int and value != int(value):
            return f"is not {self.kind}"
        return None if self.accept(value) else self.limits


RATIO = Kind(float, lambda v: 0.0 <= v < 1.0, "ratio ", "a number", "is outside [0, 1)")
FRACTION = Kind(float, lambda v: 0.0 <= v < 1.0, "fraction ", "a number", "is outside [0, 1)")
POSITIVE = Kind(int, lambda v: v >= 1, "", "a whole number", "must be at least 1")
COUNT = Kind(int, lambda v: v >= 0, "", "a whole number", "must be 0 or more")
# numpy's SeedSequence refuses negative seeds and scikit-learn's random_state anything beyond
# 32 bits; say so here rather than fail deep inside a fold split.
SEED = Kind(int, lambda v: 0 <= v < 2**32, "seed ", "a whole number",
            "is outside [0, 2**32 - 1]")
RATE = Kind(float, lambda v: math.isfinite(v) and v > 0, "learning rate ", "a number",
            "must be a positive number")
MINUTES = Kind(float, lambda v: math.isfinite(v) and v >= 0, "minutes ", "a number",
               "must be 0 or more")


# ------------------------------------------------------------------ the original's values


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: The ``faithful`` of an option that changes nothing the original computed (a seed, where
#: results go, how often a checkpoint is written): every value is the original's.
ANY = _Any()
#: The ``faithful`` of an option that has not said how it stands to the original.
_UNDECLARED = object()


@dataclasses.dataclass(frozen=True)
class Original:
    """The ``faithful`` of an option whose original value is not one value.

    Attributes:
        what: the original's value in words, for messages.
        accepts: ``accepts(value, settings)``: whether ``value`` computes what the original
            did (``settings``: the settings object that holds it, or None).
        pick: ``pick(data, settings)``: the value ``--faithful`` gives the option left at its
            default, from the data folder or the other fields.
    """

    what: str
    accepts: Callable[[Any, Any], bool]
    pick: Callable[[str | os.PathLike, Any], Any]


def _original_from_logits(settings) -> bool:
    """Whether the original's loss of a run's method read logits (CE) or clipped
    probabilities (IM-WCE, CB-WCE); a loss that follows no ``--loss-input`` reads logits."""
    chosen = method(settings.method)
    return not chosen.loss_input or chosen.original_from_logits


def _original_cb_source(data: str | os.PathLike, settings=None) -> str:
    """The authors' ``negative_weights_global.csv`` when the data folder has it, else counted
    over the complete labels of the whole set (docs/original.md section 4)."""
    return "file" if (Path(data) / GLOBAL_WEIGHTS).exists() else "oracle"


# ------------------------------------------------------------------------------------ options


@dataclasses.dataclass(frozen=True, eq=False)
class Option:
    """One option: a field of the settings objects of its ``scopes`` and an argument of the
    ``mlml-tf`` commands of its ``commands`` (``--name-with-dashes``).

    Attributes:
        name: the field's name.
        default: its default (:data:`REQUIRED` for none).
        help: what it does, for ``--help`` and the settings' documentation.
        type: its annotation.
        kind: a :class:`Kind` that parses and checks numbers, or None.
        choices: the values it takes, if they are few.
        words: the command line's words for its values, e.g. :data:`SWITCH`.
        flag: a switch of the command line, on when given.
        scopes: "run", "grid" and/or "fit".
        commands: the ``mlml-tf`` commands that take it.
        metavar: the name of its value in ``--help``.
        digest_default: a run's digest leaves it out at its default (an option added after
            mlml-tf 0.2, so that the runs of 0.2 keep their folders).
        per_head: it changes only a run's labels, weights and loss: runs that differ in nothing
            else train side by side.
        faithful: how it stands to the original: the value the original computed with,
            :data:`ANY` (no value changes what the original computed) or an
            :class:`Original`. An option of a run or of the grid must say.
    """

    name: str
    default: Any
    help: str
    type: Any = str
    kind: Kind | None = None
    choices: tuple | None = None
    words: Mapping[str, Any] | None = None
    flag: bool = False
    scopes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    metavar: str | None = None
    digest_default: bool = False
    per_head: bool = False
    faithful: Any = _UNDECLARED

    def __post_init__(self) -> None:
        if self.faithful is _UNDECLARED and {"run", "grid"} & set(self.scopes):
            raise TypeError(f"option {self.name!r} of a run or the grid must say how it stands "
                            "to the original: faithful=<the original's value>, ANY or "
                            "Original(...)")

    def departs(self, value, settings=None) -> bool:
        """Whether ``value`` changes what the original computed (``settings``: the settings
        object holding it, for an :class:`Original` that reads another field)."""
        if self.faithful is ANY or self.faithful is _UNDECLARED:
            return False
        if isinstance(self.faithful, Original):
            return not self.faithful.accepts(value, settings)
        return not (value == self.faithful and isinstance(value, bool)
                    == isinstance(self.faithful, bool))

    @property
    def original(self) -> str:
        """The original's value, as the command line spells it."""
        if isinstance(self.faithful, Original):
            return self.faithful.what
        return self.spelled(self.faithful)

    def spelled(self, value) -> str:
        """``value`` as the command line spells it."""
        for word, meant in (self.words or {}).items():
            if meant == value and isinstance(meant, bool) == isinstance(value, bool):
                return word
        if isinstance(value, bool):
            return "on" if value else "off"
        if value is None:
            return "none"
        if isinstance(value, tuple):
            return ", ".join(f"{k}={v}" for k, v in value) or "none"
        return str(value)

    def problem(self, value) -> str | None:
        """Why ``value`` is not one of this option's, or None."""
        if self.default is None and value is None:
            return None
        allowed = self.choices or (tuple(self.words.values()) if self.words else None)
        if allowed is not None and value not in allowed:
            shown = ", ".join(repr(v) if not isinstance(v, str) else v for v in allowed)
            return f"must be one of {shown}, not {value!r}"
        if self.kind is not None:
            problem = self.kind.problem(value)
            return None if problem is None else f"{value!r} {problem}"
        return None

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    # What a run is.
    Option("method", REQUIRED, "the run's method (mlml_tf.methods)", scopes=("run",),
           per_head=True, faithful=Original(
               "one of the paper's: " + ", ".join(PAPER_METHODS),
               lambda value, _: value in PAPER_METHODS, lambda _, config: config.method)),
    Option("ratio", REQUIRED, "the paper's share of hidden positives, or RPS's probability of "
           "an unknown entry", float, scopes=("run",), per_head=True, faithful=ANY),
    Option("fold", REQUIRED, "the fold, from 1", int, scopes=("run",), faithful=ANY),
    # Training.
    Option("epochs", 20, "training epochs (the paper: 20)", int, POSITIVE,
           scopes=("run", "fit"), commands=("run", "train"), faithful=20),
    Option("batch_size", 32, "training batch size (the paper: 32)", int, POSITIVE,
           scopes=("run", "grid", "fit"), commands=("run", "train"), faithful=32),
    Option("learning_rate", 0.1, "Adadelta's rate (rho 0.95, epsilon 1e-8, as TF1's); "
           "default 0.1", float, RATE, scopes=("run", "grid", "fit"),
           commands=("run", "train"), faithful=0.1),
    Option("lr_schedule", "constant", "constant (default): the rate the original trained "
           "with; exponential-decay: x0.95 every 1,000 steps, the decay its code built but "
           "never applied", choices=LR_SCHEDULES, scopes=("run", "grid"), commands=("run",),
           faithful="constant"),
    Option("decay_rate", 0.95, "the decay of exponential-decay", float, scopes=("run",),
           faithful=0.95),
    Option("decay_steps", 1000, "the steps between two decays of exponential-decay", int,
           scopes=("run",), faithful=1000),
    Option("rho", 0.95, "Adadelta's rho, TF1's", float, scopes=("run",), faithful=0.95),
    Option("epsilon", 1e-8, "Adadelta's epsilon, TF1's (Keras' default is 1e-7)", float,
           scopes=("run",), faithful=1e-8),
    Option("steps_per_epoch", "run", "run (default): floor(N / 32) of the run's own rows, one "
           "pass each epoch; original: floor(N1 / 32), N1 = rows of train1_0.0.csv, for every "
           "run, over a repeating stream", choices=STEP_COUNTS, scopes=("run", "grid"),
           commands=("run",), faithful="original"),
    Option("shuffle_buffer", 0, "0 (default): each pass a uniform permutation; 100: the "
           "original's shuffle buffer over the rows in file order", int, COUNT,
           scopes=("run", "grid"), commands=("run",), faithful=ORIGINAL_SHUFFLE_BUFFER),
    Option("head", "original", "the head on the features: the original's (flatten, 2048, "
           "1024, 256) or gap (global average pooling first)", choices=HEADS,
           scopes=("run", "grid", "fit"), commands=("run", "train"), faithful="original"),
    Option("seed", 0, "seed of every random step: the same seed gives the same files", int,
           SEED, scopes=("run", "grid", "fit"),
           commands=("run", "train", "split", "demo", "weights"), faithful=ANY),
    Option("cb_source", "observed", "CB-WCE counts over the run's observed training labels "
           "(default); oracle: over the complete labels of the whole set, as the original; "
           "file: the authors' negative_weights_global.csv in --data; estimated: estimated from "
           "the observed training labels alone (docs/methods.md section 6); oracle-loo: the "
           "row's observed positives counted over the complete labels of every other row",
           choices=CB_SOURCES, scopes=("run", "grid"), commands=("run",), per_head=True,
           faithful=Original(
               "file (the authors' negative_weights_global.csv) where the data folder has it, "
               "else oracle", lambda value, _: value in ("file", "oracle"), _original_cb_source)),
    Option("pos_weight_source", "run", "P from the run's training labels (default) or, as the "
           "original, from the complete labels of fold 1 for every run",
           choices=POS_WEIGHT_SOURCES, scopes=("run", "grid"), commands=("run",),
           per_head=True, faithful="original"),
    Option("validation_fraction", 0.0, "hold out this part of the training rows to tune "
           "per-class thresholds", float, FRACTION, scopes=("run", "grid"),
           commands=("run",), faithful=0.0),
    Option("strategy", "default", "the tf.distribute strategy", choices=STRATEGIES,
           scopes=("run", "grid"), commands=("run",), faithful="default"),
    Option("from_logits", True, "the loss from logits (numerically stable); False trains on "
           "clipped probabilities as the original's weighted methods did", bool,
           scopes=("run",),
           faithful=Original(
               "logits for CE, clipped probabilities for IM-WCE and CB-WCE (--loss-input "
               "original)", lambda value, config: config is None
               or value == _original_from_logits(config),
               lambda _, config: _original_from_logits(config))),
    Option("faithful_scoring", False, "score as the original: test rows in full batches of a "
           "stream shuffled with a buffer of 100, the last N mod 32 left at zero", bool,
           flag=True, scopes=("run", "grid"), commands=("run",), faithful=True),
    Option("faithful_test_count", False, "with --faithful-scoring, count the test rows whose "
           "image was left out as the original did: the arrays hold every row of the test "
           "file, 32 floor(N / 32) of them are predicted from the images there are (a second "
           "pass when they are fewer), the rest scored as zeros", bool, flag=True,
           scopes=("run", "grid"), commands=("run",), digest_default=True, faithful=True),
    Option("mixed_precision", False, "heads compute in float16 on float32 variables (GPUs "
           "with tensor cores); off by default, the paper's arithmetic is float32", bool,
           flag=True, scopes=("run", "grid"), commands=("run",), digest_default=True,
           faithful=False),
    Option("jit_compile", "auto", "compile the training step with XLA; auto: on a GPU, not on "
           "a CPU", "bool | str", words=SWITCH, scopes=("run", "grid"), commands=("run",),
           digest_default=True, faithful=ANY),
    Option("protocol", "paper", "whose training labels the run reads (docs/methods.md "
           "section 2), as mlml-tf split --protocol wrote them", choices=tuple(PROTOCOLS),
           scopes=("run",), commands=("run", "split"), digest_default=True, per_head=True,
           faithful=PAPER.name),
    Option("count", FPC_DEFAULT_COUNT, "FPC's count of annotated positives and negatives per "
           "class", int, POSITIVE, scopes=("run",), digest_default=True, per_head=True,
           faithful=ANY),
    Option("params", (), "the method's hyper-parameters that differ from its defaults, as "
           "(name, value) pairs", tuple, scopes=("run",), digest_default=True, per_head=True,
           faithful=()),
    # The grid's images and features.
    Option("images", None, "image root; files come from DIR/images.csv or --image-pattern",
           "Path | None", scopes=("grid",), commands=("run",), faithful=ANY),
    Option("image_pattern", "{id}.jpg", "file of an id under --images when the data folder "
           "has no images.csv", scopes=("grid",), commands=("run",), faithful=ANY),
    Option("backbone", "InceptionResNetV2", "a keras.applications model name (train: or a "
           "SavedModel directory)", scopes=("grid", "fit"), commands=("run", "train"),
           faithful="InceptionResNetV2"),
    Option("weights", "imagenet", "'imagenet' (downloaded), 'none', or a local weights file",
           "str | None", scopes=("grid", "fit"), commands=("run", "train"), faithful="imagenet"),
    Option("hub", None, "a TF Hub handle or local SavedModel to use as backbone instead",
           "str | None", scopes=("grid",), commands=("run",), faithful=None),
    Option("scaling", "imagenet", "imagenet (default): the original's (x / 255 - mean) / std; "
           "inception: x / 127.5 - 1", choices=SCALINGS, scopes=("grid", "fit"),
           commands=("run", "train"), faithful="imagenet"),
    Option("image_size", 224, "images are resized to this many pixels a side", int, POSITIVE,
           scopes=("grid", "fit"), commands=("run", "train"), faithful=224),
    Option("resize", "skimage", "skimage (default): skimage's anti-aliased resize, as the "
           "original; bilinear: TensorFlow's plain bilinear resize, about twice as fast",
           choices=RESIZES[:2], scopes=("grid",), commands=("run",), faithful="skimage"),
    Option("jpeg_idct", "fast", "fast (default): TensorFlow's JPEG decoder as it comes; "
           "accurate: libjpeg's accurate inverse DCT, pixel for pixel what Pillow and OpenCV, "
           "the original's decoders, give", choices=JPEG_IDCTS, scopes=("grid",),
           commands=("run",), faithful="accurate"),
    Option("feature_dtype", "float16", "how the feature cache stores the backbone's output: "
           "float16 (default; half the file and memory) or float32, as computed",
           choices=FEATURE_DTYPES, scopes=("grid", "fit"), commands=("run", "train", "demo"),
           # --faithful runs the backbone at every step: no feature cache, either way.
           faithful=ANY),
    Option("keep_grayscale", False, "NUS-WIDE: keep the images not stored as RGB (grayscale, "
           "CMYK), which the original's preprocessing could not read and left out", bool,
           flag=True, scopes=("grid",), commands=("run",), faithful=False),
    Option("loss_input", "logits", "the loss from logits (default, stable), from probabilities "
           "clipped to [1e-7, 1 - 1e-7], or as the original (CE from logits, IM-WCE and CB-WCE "
           "from clipped probabilities)", choices=LOSS_INPUTS, scopes=("grid",),
           commands=("run",), faithful="original"),
    Option("faithful_batch_norm", False, "the backbone's batch norm on batch statistics while "
           "training, as the original: the backbone runs at every step (no feature cache)",
           bool, flag=True, scopes=("grid",), commands=("run",), faithful=True),
    Option("skip_bad_images", False, "leave out rows whose image is missing or cannot be read "
           "(counted, reported) instead of stopping", bool, flag=True, scopes=("grid",),
           commands=("run", "train", "predict"), faithful=ANY),
    Option("naming", "auto", "experiment folder names of the original's COCO or NUS-WIDE "
           "runs; auto: NUS-WIDE's for a NUS-WIDE data folder", choices=("auto", *NAMING),
           scopes=("grid",), commands=("run",), faithful=ANY),
    Option("together", None, "train up to N runs of a fold (every method and ratio) side by "
           "side in one model, each to the result it gets alone; default: as many as a "
           "quarter of the memory holds; 1: one by one", "int | None", POSITIVE,
           scopes=("grid",), commands=("run",), metavar="N", faithful=ANY),
    Option("backup_minutes", BACKUP_MINUTES, "least time between two checkpoints of a "
           "training, written at epoch ends (0: every epoch); a killed run resumes from the "
           "last one", float, MINUTES, scopes=("grid",), commands=("run",), faithful=ANY),
    # A model of one's own data.
    Option("method", "cb-wce", "the method",
           choices=tuple(m for m in METHODS if not METHODS[m].needs_oracle),
           scopes=("fit",), commands=("train",)),
    Option("params", (), "the method's hyper-parameters that differ from its defaults, as "
           "(name, value) pairs", tuple, scopes=("fit",)),
    Option("cb_source", "estimated", "CB-WCE's confidence weights: estimated from the "
           "labels (default; docs/methods.md section 6) or counted over them (observed, the "
           "paper's rule)",
           choices=OWN_CB_SOURCES, scopes=("fit",), commands=("train",)),
    Option("validation", 0.2, "share of the rows held out, stratified, to tune per-class "
           "thresholds and report validation metrics (default 0.2; 0: none)", float,
           FRACTION, scopes=("fit",), commands=("train",)),
    Option("resize", "antialias", "how the saved model resizes: bilinear with anti-aliasing "
           "(default) or without", choices=OWN_RESIZES, scopes=("fit",), commands=("train",)),
    Option("fine_tune", 0, "then train the backbone's top N layers with weights (batch norm "
           "frozen) with the head on the images, lightly augmented", int, COUNT,
           scopes=("fit",), commands=("train",), metavar="N"),
    Option("fine_tune_epochs", 5, "epochs of the fine-tuning", int, POSITIVE, scopes=("fit",),
           commands=("train",)),
    Option("fine_tune_learning_rate", 1e-5, "Adam's rate of the fine-tuning (default 1e-5)",
           float, RATE, scopes=("fit",), commands=("train",)),
    Option("mixed_precision", "auto", "fine-tune in float16; auto: where a GPU is present",
           "bool | str", words=SWITCH, scopes=("fit",), commands=("train",)),
)


def options(scope: str | None = None, command: str | None = None) -> list[Option]:
    """The options of a settings object (``scope``) or of a command, in table order."""
    return [o for o in OPTIONS if (scope is None or scope in o.scopes)
            and (command is None or command in o.commands)]


def _settings_class(name: str, scope: str, doc: str, check=None, namespace=None) -> type:
    """A frozen dataclass whose fields are the options of ``scope``; building one calls
    ``check(self)``, then checks every value (a DataError naming the option)."""
    fields = []
    for option in sorted(options(scope), key=lambda o: o.default is not REQUIRED):
        default = {} if option.default is REQUIRED else {"default": option.default}
        fields.append((option.name, option.type,
                       dataclasses.field(metadata={"option": option}, **default)))

    def __post_init__(self) -> None:
        # The whole first: its messages say more than one value's.
        if check is not None:
            check(self)
        for field in dataclasses.fields(self):
            option = field.metadata["option"]
            problem = option.problem(getattr(self, field.name))
            if problem is not None:
                raise DataError(f"{field.name} {problem}")

    rows = "\n".join(
        f"    ``{o.name}`` ({'required' if o.default is REQUIRED else repr(o.default)}): {o.help}."
        for o in options(scope))
    cls = dataclasses.make_dataclass(
        name, fields, frozen=True,
        namespace={"__post_init__": __post_init__, "__doc__": f"{doc}\n\n{rows}\n",
                   **(namespace or {})})
    cls.__module__ = __name__
    return cls


def _check_run(config) -> None:
    chosen = method(config.method)
    object.__setattr__(config, "params", params_key(dict(config.params)))
    method_params(config.method, dict(config.params))
    if not config.from_logits and not chosen.loss_input:
        raise DataError(f"the loss of {config.method} reads logits: from_logits=False (the "
                        "original's clipped probabilities) is for the paper's methods")
    protocol(config.protocol).check(config.protocol_value)


RunConfig = _settings_class(
    "RunConfig", "run",
    "Settings of one run: its method, protocol, ratio (or count) and fold, and how it trains.",
    _check_run,
    {"protocol_value": property(lambda self: protocol(self.protocol).value_of(self.ratio,
                                                                              self.count),
                                doc="The run's value of its protocol: its ratio, count or "
                                "None.")})


GridOptions = _settings_class(
    "GridOptions", "grid",
    "Settings shared by every run of a grid (``mlml-tf run``).")


def _check_fit(settings) -> None:
    if method(settings.method).needs_oracle:
        raise DataError(f"method {settings.method!r} needs to know which unknown entries are "
                        "positive, which only a benchmark does: choose another method")
    method_params(settings.method, dict(settings.params))


def _fit_run_config(settings) -> RunConfig:
    """The :class:`RunConfig` of the head's training: the options a fit and a run share, the
    labels as they are (1 / 0 / -1: a protocol of partial labels)."""
    return RunConfig(method=settings.method, params=tuple(settings.params), ratio=0.0, fold=1,
                     protocol="rps", cb_source=settings.cb_source, **shared(settings, "run"))


FitSettings = _settings_class(
    "FitSettings", "fit",
    "How :func:`mlml_tf.fit_model` trains a model of one's own data; the defaults are those of "
    "``mlml-tf run`` but ``resize`` (a saved model resizes with Keras' own layer).",
    _check_fit, {"run_config": _fit_run_config})


def shared(settings, scope: str) -> dict:
    """The values of ``settings`` (a settings object) that the settings of ``scope`` take too:
    the fields of the options declared in both scopes."""
    given = {f.metadata["option"] for f in dataclasses.fields(settings)}
    return {o.name: getattr(settings, o.name) for o in options(scope) if o in given}


#: Fields of :class:`RunConfig` left out of a run's digest at their default value: added after
#: mlml-tf 0.2, so that a run of 0.2 keeps its folder and stays complete.
DIGEST_DEFAULTS: tuple[str, ...] = tuple(o.name for o in options("run") if o.digest_default)
#: Fields of :class:`RunConfig` that change only a run's labels, entry weights and loss: runs
#: that differ in nothing else and train on the same rows train side by side.
PER_HEAD_FIELDS: tuple[str, ...] = tuple(o.name for o in options("run") if o.per_head)
