"""KFP component: register a blessed model in MLflow as the `challenger`."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from loopline.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(
    model: Input[Model],
    train: Input[Dataset],
    holdout: Input[Dataset],
    tracking_uri: str,
    model_name: str,
    pipeline_run: str,
    extra_tags: dict = {},
) -> str:
    """Registers the model as a new MLflow model version with alias `challenger`.

    The version is tagged with the pipeline run, the training data's URI and SHA-256 and the
    image references; registering twice from the same pipeline run returns the same version.

    Args:
        model: SavedModel that passed the gate.
        train: Training split (its metadata gives the row count).
        holdout: Holdout split (its first rows become the input example).
        tracking_uri: MLflow tracking URI (http(s):// server or sqlite:/// file).
        model_name: Registered model name.
        pipeline_run: Pipeline run identifier recorded on the version.
        extra_tags: More tags for the model version.

    Returns:
        Output: The registered model version.
    """
    from loopline import steps

    steps.setup_logging()
    return steps.register_model(
        model=model, train=train, holdout=holdout, tracking_uri=tracking_uri, model_name=model_name,
        pipeline_run=pipeline_run, extra_tags=extra_tags,
    )
