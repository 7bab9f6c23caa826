"""KFP component: the traffic window of one model, from the objects KServe's logger wrote.

The work is done by `loopline.executors.load_traffic` (src/loopline/executors/load_traffic.py).
"""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from loopline.core.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def load_traffic(
    traffic_log_uri: str,
    model_name: str,
    window: Output[Dataset],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    features: list = [],
    namespace: str = "default",
    inference_service: str = "",
    window_hours: float = 24.0,
    version: str = "",
    endpoint: str = "",
    max_bad_share: float = 0.05,
) -> int:
    """Reads what one model was asked and answered in the last window_hours.

    Lists the logger's objects of the model's InferenceService (by their time in the store),
    decodes V1 and V2 request bodies into feature columns and joins each response's
    probabilities to its request by their shared id. Requests or responses without their other
    half, undecodable records and unreadable objects are counted, never rows.

    Args:
        traffic_log_uri: The logger's prefix (s3://, gs://, or a folder for the local server).
        model_name: Registered model name (the InferenceService is named after it).
        features: The model's feature columns; empty takes the first request's.
        namespace: Namespace of the InferenceService.
        inference_service: InferenceService name; empty for the one deploy_model names after the model.
        window_hours: How far back the window reaches, by the objects' time in the store.
        version: Only this model version's traffic; empty for every version.
        endpoint: Only "default" or "canary" traffic; empty for both.
        max_bad_share: Largest share of bad records (an unreadable object counts as one) before the step fails.

    Returns:
        window: Parquet: the feature columns, request_id, endpoint, model_version, prediction (the last class's probability) and predicted_class.
        metrics: Objects, requests, responses, pairs, unpaired on each side, undecodable, rows per version and endpoint.
        summary: The counts as one line of Markdown.
        Output: The number of request/response pairs in the window.
    """
    from loopline.core.logs import setup_logging
    from loopline.executors import load_traffic as executor
    from loopline.traffic.window import WindowSettings

    setup_logging()
    settings = WindowSettings(namespace=namespace, inference_service=inference_service, window_hours=window_hours,
                              version=version, endpoint=endpoint, max_bad_share=max_bad_share)
    return executor.run(traffic_log_uri=traffic_log_uri, model_name=model_name, features=features, window=window,
                        metrics=metrics, summary=summary, settings=settings)
