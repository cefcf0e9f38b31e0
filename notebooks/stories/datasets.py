"""What differs from one of the paper's data sets to the other, as data: the stories of
:mod:`stories.preprocessing`, :mod:`stories.training` and :mod:`stories.results` are told once
and read their data set's parts from here.
"""

from __future__ import annotations

import dataclasses

#: A step of a story as data: the markdown that says why, the code that acts.
Step = tuple[str, str]


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a data set's label table comes from: the parts of its preprocessing notebook."""

    #: What the notebook starts from ("from <raw> to folds with missing labels").
    raw: str
    #: The images the paper kept (docs/original.md section 1).
    about: str
    #: What the notebook does before cutting folds ("This notebook <builds>, cuts it ...").
    builds: str
    #: Paragraphs under "Parameters", after "The defaults are the paper's settings."
    explained: str
    #: The parameters before ``DATA_DIR``: ``MOUNT_DRIVE`` and where the raw files are.
    parameters: str
    #: Steps before the label table (e.g. a download).
    fetch: tuple[Step, ...]
    #: How the label table is made from the raw files.
    table: str
    #: The arguments of ``mlml-tf prepare <key>`` that name the raw files, then those after
    #: ``--min-labels``, as code: an option and its value in one string.
    arguments: tuple[str, ...]
    table_arguments: tuple[str, ...]
    #: Which labels come together, and how the heatmap orders them.
    cooccurrence: str
    #: What is known of the published folds' positive rates, if anything.
    fold_note: str = ""
    #: Parameters after ``MIN_LABELS`` that only this data set has.
    table_parameters: str = ""


@dataclasses.dataclass(frozen=True)
class DataSet:
    """One of the paper's data sets, as its notebooks name and describe it."""

    key: str  # the command line's name, and the folder under WORK
    title: str
    file: str  # the notebooks' prefix or suffix: MSCOCO-results, CE-MSCOCO
    paper: str  # the label table the paper trained on
    min_labels: int
    noun: str  # what a column is called: class, concept
    nouns: str  # their plural
    source: Source
    #: ``IMAGES`` of the training notebooks (code, with its comment).
    images: str
    #: The constant of :mod:`mlml_tf.datasets` that names the columns.
    names_constant: str
    #: The paper's figure of box plots for this data set.
    boxplot_figure: str
    #: Steps that only this data set's results notebook has.
    results_steps: tuple[Step, ...] = ()

    @property
    def slug(self) -> str:
        """The figures' prefix."""
        return self.file.lower()


COCO = DataSet(
    key="coco", title="MS-COCO", file="MSCOCO",
    paper="33,052 images with at least 4 of the 80 labels, 5.28 labels each",
    min_labels=4, noun="class", nouns="classes",
    source=Source(
        raw="the raw annotations",
        about="""
        The paper trains on the images of COCO 2017 train that carry at least 4 of its 80
        labels: 33,052 images, 5.28 labels each (docs/original.md section 1).
        """,
        builds="downloads COCO, builds that label table exactly as the original code did",
        explained="""
        On Colab the raw data go to the local disk (`/content/coco`, fast, lost with the
        session) and the small label folder and figures to Google Drive. Elsewhere, set the
        paths to local folders.
        """,
        parameters="""
        MOUNT_DRIVE = True  # Colab: keep data folder and figures on Google Drive
        DOWNLOAD = True  # fetch COCO 2017 train (annotations 241 MB, images 18 GB)
        DOWNLOAD_IMAGES = True  # the images are needed for training, not for the labels
        COCO_ROOT = "/content/coco"  # where the raw files are, or go
        ANNOTATIONS = "/content/coco/annotations/instances_train2017.json"
        """,
        table_parameters="""
        IDS = "original"  # row ids as in the published label files; "coco": COCO image ids
        """,
        fetch=(("""
        ## Download COCO 2017 train

        The annotations archive and the image archive are checked against their published
        SHA-1, extracted, and marked as done, so running this cell again costs nothing. An
        interrupted download resumes where it stopped.
        """, """
        from mlml_tf.datasets.download import download_coco

        if DOWNLOAD:
            download_coco(COCO_ROOT, images=DOWNLOAD_IMAGES)
        """),),
        table="""
        One row per image, one column per category: 1 when at least one annotation of that
        category survives the box check of gluoncv, which the original read COCO through
        (crowd regions count; boxes that collapse to a line do not). Images with fewer than
        `MIN_LABELS` labels are left out, the ids stay the original row numbers, so the folder
        is interchangeable with the published label files.
        """,
        arguments=('"--annotations", ANNOTATIONS',),
        table_arguments=('"--ids", IDS',),
        cooccurrence="""
        CB-WCE rests on one observation: labels are not independent. A dining table makes a
        chair, a cup and a fork likely. The heatmap shows P(column class | row class) over the
        table. The categories come grouped by supercategory (vehicles, animals, kitchen, food,
        furniture, ...), so related classes sit side by side. Paper eq. 3 turns these counts
        into the confidence that an unlabelled class is truly absent.
        """,
        fold_note=" (within 0.007 in the published COCO folds)",
    ),
    images='"/content/coco/train2017"  # the train2017 folder of COCO',
    names_constant="COCO_CLASS_NAMES", boxplot_figure="Figure 1",
    results_steps=(("""
        ## Against the original's training logs

        The original's logs give the micro ROC-AUC of CE and IM-WCE on COCO fold 1 for each
        ratio (docs/original.md section 8); the runs found here sit beside them. The original
        scored the last N mod 32 test rows as all-zero rows and ran the backbone's batch
        normalisation on batch statistics, so small differences are expected.
        """, """
        results.compare_with_original_logs(runs)
        """),),
)

NUSWIDE = DataSet(
    key="nuswide", title="NUS-WIDE", file="NUSWIDE",
    paper="24,624 images with at least 3 of the 81 labels, 3.81 labels each",
    min_labels=3, noun="concept", nouns="concepts",
    source=Source(
        raw="the data set's files",
        about="""
        The paper's second data set: the NUS-WIDE images that carry at least 3 of its 81
        concepts, 24,624 images with 3.81 labels each (docs/original.md section 1).
        """,
        builds="builds that label table from the data set's own files",
        explained="""
        NUS-WIDE's images are not distributed at a public address: ask its authors (the
        National University of Singapore's Lab for Media Search) for them and put the folder on
        Google Drive (or, faster, copy it to `/content`). `NUS_ROOT` must hold
        `ImageList/Imagelist.txt`, `AllTags81.txt` (or `NUS_WID_Tags/AllTags81.txt`),
        `Concepts81.txt` (or `ConceptsList/Concepts81.txt`) and the images under `Flickr/`.
        """,
        parameters="""
        MOUNT_DRIVE = True  # Colab: the data set, data folder and figures are on Google Drive
        NUS_ROOT = "/content/drive/MyDrive/NUS-WIDE"  # the NUS-WIDE folder
        """,
        fetch=(),
        table="""
        `Imagelist.txt` and `AllTags81.txt` describe the same images line for line: one path,
        one row of 81 zeros and ones. The id of an image is its file stem
        (`0001_2124494179`) and the columns are named `0` to `80`, as in the original files;
        the concept names travel in the manifest. Images with fewer than `MIN_LABELS` labels
        are left out.
        """,
        arguments=('"--root", NUS_ROOT',),
        table_arguments=(),
        cooccurrence="""
        P(column concept | row concept) over the table, concepts in alphabetical order. Sky
        comes with clouds, beach with water and sand: knowing some labels of an image says
        much about the others, and paper eq. 3 turns these counts into the confidence that an
        unlabelled concept is truly absent (CB-WCE).
        """,
    ),
    images='"/content/drive/MyDrive/NUS-WIDE"  # NUS-WIDE (images.csv starts at Flickr/)',
    names_constant="NUSWIDE_CONCEPTS", boxplot_figure="Figure 2",
)

#: The paper's data sets by key, in the order of the notebooks.
DATASETS: dict[str, DataSet] = {d.key: d for d in (COCO, NUSWIDE)}
