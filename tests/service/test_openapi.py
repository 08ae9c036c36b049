"""The OpenAPI document: every endpoint is described, with its request/response models and examples,
and the docs are served without the API key."""

import httpx


def test_openapi_documents_every_endpoint_with_examples(service):
    r = httpx.get(service.url + "/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    paths = spec["paths"]
    for path, method in [("/classify", "post"), ("/pendulum/predict", "post"), ("/models", "get"),
                         ("/models/{name}", "get"), ("/models/{name}/stability", "post"),
                         ("/models/{name}/stability.png", "get"), ("/health/live", "get"),
                         ("/health/ready", "get"), ("/metrics", "get")]:
        assert method in paths[path], (path, method)
    schemas = spec["components"]["schemas"]
    for name in ("ClassifyRequest", "PendulumRequest", "StabilityRequest"):
        assert schemas[name].get("examples"), name
    for name in ("ClassifyResponse", "PendulumResponse", "ModelList", "StabilityReport", "Readiness"):
        assert name in schemas, name
    classify = paths["/classify"]["post"]
    assert {"401", "404", "413", "422", "503", "504"} <= set(classify["responses"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    assert httpx.get(service.url + "/docs").status_code == 200


def test_api_key_is_declared_only_when_one_is_configured(tmp_path):
    from service.app import create_app
    from service.config import Settings

    for key, declared in ((None, False), ("secret", True)):
        spec = create_app(Settings(model_dir=tmp_path, api_key=key)).openapi()
        for path, method in [("/classify", "post"), ("/pendulum/predict", "post"), ("/models", "get")]:
            assert ("security" in spec["paths"][path][method]) == declared, (key, path)
        assert ("securitySchemes" in spec.get("components", {})) == declared, key
