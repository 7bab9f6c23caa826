"""KFP component: serve a registered model with KServe and move the `champion` alias."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from loopline.images import DEPLOYER_IMAGE


@dsl.component(base_image=DEPLOYER_IMAGE, install_kfp_package=False)
def deploy_model(
    model_name: str,
    model_version: str,
    tracking_uri: str,
    holdout: Input[Dataset],
    manifest: Output[Artifact],
    target: str = "local",
    namespace: str = "default",
    storage_uri: str = "",
    pipeline_run: str = "",
    local_home: str = "",
) -> str:
    """Builds the serving.kserve.io/v1beta1 InferenceService and serves the model version.

    With target "kserve" the InferenceService is created or patched in the cluster; with target
    "local" a KServe model server on loopback serves the version. A prediction on holdout rows
    must succeed before the `champion` alias moves; otherwise the previous server keeps serving.

    Args:
        model_name: Registered model name.
        model_version: Registered model version to deploy.
        tracking_uri: MLflow tracking URI.
        holdout: Holdout split; its first rows are the smoke test.
        target: "local" or "kserve".
        namespace: Kubernetes namespace of the InferenceService.
        storage_uri: Location of the SavedModel for KServe (gs://, s3://, pvc://); required for "kserve".
        pipeline_run: Pipeline run identifier, recorded as a label.
        local_home: Local state directory for target "local" (default $LOOPLINE_HOME or ./.loopline).

    Returns:
        manifest: The InferenceService as YAML.
        Output: The prediction URL (local) or <name>.<namespace> (cluster).
    """
    from loopline import steps

    steps.setup_logging()
    return steps.deploy_model(
        model_name=model_name, model_version=model_version, tracking_uri=tracking_uri, holdout=holdout,
        manifest=manifest, target=target, namespace=namespace, storage_uri=storage_uri,
        pipeline_run=pipeline_run, local_home=local_home,
    )
