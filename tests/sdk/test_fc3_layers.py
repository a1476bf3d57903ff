"""Layers through the official FC 3.0 SDK (alibabacloud-fc20230330): the same layer versions as
2.0, in 3.0's model (``acl`` a string, ``layerVersionArn``), and GetLayerVersionByArn with the
ARN percent-encoded into one path segment; a 3.0 function that names layers (refused when one does
not exist) imports their code and shows them as ``layers: [{arn, size}]``.
"""

from __future__ import annotations

import urllib.request

import pytest

from alibabacloud_fc20230330 import models as m3
from alibabacloud_fc_open20210406 import models as m

from fcdkit import ACCOUNT_ID, REGION, b64, make_zip_bytes, unique


def arn(name: str, version: int) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:layers/{name}/versions/{version}"


def publish(fc3, name: str, files: dict, **kwargs) -> m3.Layer:
    resp = fc3.create_layer_version(
        name,
        m3.CreateLayerVersionRequest(
            body=m3.CreateLayerVersionInput(
                code=m3.InputCodeLocation(zip_file=b64(make_zip_bytes(files))),
                compatible_runtime=["python3.10", "custom.debian10"],
                description=kwargs.get("description", ""),
                license=kwargs.get("license", ""),
            )
        ),
    )
    assert resp.status_code == 200
    return resp.body


def expect_fc3_error(code: str, status: int, fn, *args):
    with pytest.raises(Exception) as excinfo:
        fn(*args)
    err = excinfo.value
    assert getattr(err, "code", None) == code, err
    assert getattr(err, "status_code", None) == status, err


def test_layer_versions_through_fc3(fc3, client):
    name = unique("lyr3")
    files = {"python/mylib.py": "VALUE = 3\n"}
    v1 = publish(fc3, name, files, description="first", license="MIT")
    assert (v1.layer_name, v1.version, v1.acl) == (name, 1, "0")
    assert v1.layer_version_arn == arn(name, 1)
    assert (v1.description, v1.license) == ("first", "MIT")
    assert v1.code_size > 0 and v1.code_checksum and v1.create_time
    with urllib.request.urlopen(v1.code.location) as r:
        assert r.read() == make_zip_bytes(files)
    v2 = publish(fc3, name, {"python/mylib.py": "VALUE = 4\n"})
    assert v2.version == 2

    got = fc3.get_layer_version(name, "1").body
    assert (got.layer_version_arn, got.code_checksum) == (arn(name, 1), v1.code_checksum)
    by_arn = fc3.get_layer_version_by_arn(arn(name, 2)).body
    assert (by_arn.layer_name, by_arn.version) == (name, 2)
    expect_fc3_error("LayerNotFound", 404, fc3.get_layer_version_by_arn, arn(name, 9))

    versions = fc3.list_layer_versions(name, m3.ListLayerVersionsRequest(start_version="1", limit=1)).body
    assert [v.version for v in versions.layers] == [1] and versions.next_version == 2
    listed = fc3.list_layers(m3.ListLayersRequest(prefix=name, limit=10)).body
    assert [(v.layer_name, v.version) for v in listed.layers] == [(name, 2)]

    fc3.put_layer_acl(name, m3.PutLayerACLRequest(acl="1"))
    assert fc3.get_layer_version(name, "2").body.acl == "1"
    public = fc3.list_layers(m3.ListLayersRequest(prefix=name, public="true")).body
    assert [v.layer_name for v in public.layers] == [name]
    # The same layer seen through 2.0.
    assert client.get_layer_version(name, "2").body.acl == 1

    assert fc3.delete_layer_version(name, "2").status_code == 204
    expect_fc3_error("LayerNotFound", 404, fc3.get_layer_version, name, "2")
    expect_fc3_error("LayerNotFound", 404, fc3.get_layer_version_by_arn, arn(name, 2))
    listed = fc3.list_layers(m3.ListLayersRequest(prefix=name)).body
    assert [(v.layer_name, v.version) for v in listed.layers] == [(name, 1)]
    assert [v.version for v in client.list_layer_versions(name, m.ListLayerVersionsRequest()).body.layers] == [1]


@pytest.mark.invoke
def test_fc3_function_attaches_layers(fc3):
    lib = unique("lyr3")
    publish(fc3, lib, {"python/mylib3.py": "VALUE = 'three'\n"})
    handler = "import mylib3\n\ndef handler(event, context):\n    return mylib3.VALUE\n"
    name = unique("f3")

    def create(layers):
        return fc3.create_function(
            m3.CreateFunctionRequest(
                body=m3.CreateFunctionInput(
                    function_name=name,
                    runtime="python3.10",
                    handler="index.handler",
                    code=m3.InputCodeLocation(zip_file=b64(make_zip_bytes({"index.py": handler}))),
                    layers=layers,
                )
            )
        )

    # An unknown version is refused, and no function is left behind.
    expect_fc3_error("LayerNotFound", 404, create, [arn(lib, 2)])
    expect_fc3_error("FunctionNotFound", 404, fc3.get_function, name, m3.GetFunctionRequest())
    try:
        created = create([arn(lib, 1)]).body
        assert [(layer.arn, layer.size > 0) for layer in created.layers] == [(arn(lib, 1), True)]
        got = fc3.get_function(name, m3.GetFunctionRequest()).body
        assert [layer.arn for layer in got.layers] == [arn(lib, 1)]
        resp = fc3.invoke_function(name, m3.InvokeFunctionRequest(body=b"{}"))
        # The 3.0 SDK hands the body over as a stream.
        body = resp.body.read() if hasattr(resp.body, "read") else resp.body
        assert resp.status_code == 200 and "x-fc-error-type" not in resp.headers, (resp.headers, body)
        assert body == b"three"
    finally:
        fc3.delete_function(name)
