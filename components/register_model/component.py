"""KFP component: register a blessed model in MLflow as the `challenger`, with its lineage.

The work is done by `loopline.executors.register_model` (src/loopline/executors/register_model.py).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def register_model(
    model: Input[Model],
    blessing: Input[Artifact],
    train: Input[Dataset],
    holdout: Input[Dataset],
    tracking_uri: str,
    model_name: str,
    pipeline_run: str,
    pipeline_name: str = "",
    pipeline_run_id: str = "",
    image_refs: dict = {},
    extra_tags: dict = {},
    vertex_model_registry: dict = {},
) -> str:
    """Registers a blessed model as a new MLflow model version with alias `challenger`.

    Refuses a model whose blessing is negative or was issued for another model (URI or content)
    or another holdout. The version has a signature and an input example, and lineage tags: the
    training data's URI and SHA-256, the holdout's SHA-256, pipeline name, run and run id, image
    references, git commit when known, hyperparameters, metrics and the gate report. Registering
    again from the same pipeline run returns the same version. Transient registry errors are
    retried with backoff; `champion` is never moved here.

    Args:
        model: SavedModel that passed the gate.
        blessing: Blessing written by evaluate_model for this model and holdout.
        train: Training split (its metadata gives the row count).
        holdout: Holdout split (its first rows become the input example).
        tracking_uri: MLflow tracking URI (http(s):// server or sqlite:/// file).
        model_name: Registered model name.
        pipeline_run: Pipeline run name recorded on the version; registration is idempotent per value.
        pipeline_name: Name of the pipeline that produced the model.
        pipeline_run_id: Pipeline run id recorded on the version.
        image_refs: Image reference per Loopline image role, recorded as tags.
        extra_tags: More tags for the model version.
        vertex_model_registry: Optional Vertex AI Model Registry upload, e.g. {"project": "p", "location": "us-central1", "serving_container_image_uri": "...", "artifact_uri": "gs://..."}; empty for none.

    Returns:
        Output: The registered model version.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import register_model as executor
    from loopline.registry import RegisterSettings

    setup_logging()
    settings = RegisterSettings(pipeline_name=pipeline_name, pipeline_run_id=pipeline_run_id, image_refs=image_refs,
                                extra_tags=extra_tags, vertex_model_registry=vertex_model_registry)
    return executor.run(model=model, blessing=blessing, train=train, holdout=holdout, tracking_uri=tracking_uri,
                        model_name=model_name, pipeline_run=pipeline_run, settings=settings)
