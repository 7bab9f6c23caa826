"""The Kubernetes API stand-in lives in the library (the containerized rehearsal runs it too)."""

from loopline.kubernetes_standin import KubernetesApiStandIn, Recorded, merge_patch  # noqa: F401
