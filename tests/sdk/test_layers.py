"""Layers through the official 2021-04-06 SDK: publish, read, list, delete, ACL; functions that
name layers (refused when a layer does not exist, with nothing stored) and see them at run time
the way FC's runtimes do (python: ``/opt/python`` on ``sys.path``; nodejs: ``NODE_PATH`` with
``/opt/nodejs/node_modules``; ``/opt/bin`` on ``PATH``), jailed or not.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from alibabacloud_fc_open20210406 import models as m
from alibabacloud_fc_open20210406.client import Client

from fcdkit import (
    ACCOUNT_ID,
    REGION,
    _new_server,
    b64,
    create_function,
    expect_error,
    make_zip_bytes,
    server_status,
    unique,
)

PY_HANDLER = """
import json, os, shutil
import mylib

def handler(event, context):
    return json.dumps({
        "value": mylib.VALUE,
        "file": mylib.__file__,
        "tool": shutil.which("layertool"),
        "first": open(os.path.join(os.path.dirname(mylib.__file__), "..", "which.txt")).read(),
    })
"""

NODE_HANDLER = """
exports.handler = function (event, context, callback) {
  const x = require('x');
  callback(null, JSON.stringify({ value: x.value, where: require.resolve('x') }));
};
"""


def publish(client: Client, name: str, files: dict, runtimes=("python3.10",), **kwargs) -> m.CreateLayerVersionResponseBody:
    resp = client.create_layer_version(
        name,
        m.CreateLayerVersionRequest(
            code=m.Code(zip_file=b64(make_zip_bytes(files, executable=tuple(k for k in files if k.startswith("bin/"))))),
            compatible_runtime=list(runtimes),
            description=kwargs.get("description", "a layer"),
        ),
    )
    assert resp.status_code == 200
    return resp.body


def arn(name: str, version: int) -> str:
    return f"acs:fc:{REGION}:{ACCOUNT_ID}:layers/{name}/versions/{version}"


def invoke_json(client: Client, service: str, function: str, qualifier: str | None = None) -> dict:
    resp = client.invoke_function(service, function, m.InvokeFunctionRequest(body=b"{}", qualifier=qualifier))
    assert resp.status_code == 200, resp.status_code
    assert "x-fc-error-type" not in resp.headers, (resp.headers, resp.body)
    return json.loads(resp.body)


def test_publish_get_list_delete(client: Client):
    name = unique("lyr")
    v1 = publish(client, name, {"python/mylib.py": "VALUE = 1\n"}, description="first")
    assert (v1.layer_name, v1.version, v1.acl, v1.description) == (name, 1, 0, "first")
    assert v1.arn == arn(name, 1)
    assert v1.compatible_runtime == ["python3.10"]
    assert v1.codesize > 0 and v1.code_checksum and v1.create_time
    assert v1.code.location.startswith("http")
    v2 = publish(client, name, {"python/mylib.py": "VALUE = 2\n"})
    assert v2.version == 2

    got = client.get_layer_version(name, "1").body
    assert (got.layer_name, got.version, got.arn, got.arn_v2) == (name, 1, arn(name, 1), arn(name, 1))
    assert got.code_size == v1.codesize and got.code_checksum == v1.code_checksum
    # The code location downloads the zip that was published.
    with urllib.request.urlopen(got.code.location) as r:
        assert r.read() == make_zip_bytes({"python/mylib.py": "VALUE = 1\n"})

    versions = client.list_layer_versions(name, m.ListLayerVersionsRequest(start_version=1, limit=1)).body
    assert [v.version for v in versions.layers] == [1] and versions.next_version == 2
    versions = client.list_layer_versions(name, m.ListLayerVersionsRequest(start_version=2, limit=5)).body
    assert [v.version for v in versions.layers] == [2] and not versions.next_version

    listed = client.list_layers(m.ListLayersRequest(prefix=name, limit=10)).body
    assert [(layer.layer_name, layer.version) for layer in listed.layers] == [(name, 2)]

    client.put_layer_acl(name, m.PutLayerACLRequest(public=True))
    assert client.get_layer_version(name, "2").body.acl == 1
    public = client.list_layers(m.ListLayersRequest(prefix=name, public=True)).body
    assert [layer.layer_name for layer in public.layers] == [name]
    client.put_layer_acl(name, m.PutLayerACLRequest(public=False))
    assert not client.list_layers(m.ListLayersRequest(prefix=name, public=True)).body.layers

    resp = client.delete_layer_version(name, "2")
    assert resp.status_code == 204
    expect_error("LayerNotFound", 404, client.get_layer_version, name, "2")
    expect_error("LayerNotFound", 404, client.delete_layer_version, name, "2")
    listed = client.list_layers(m.ListLayersRequest(prefix=name)).body
    assert [(layer.layer_name, layer.version) for layer in listed.layers] == [(name, 1)]
    # A number is never reused.
    assert publish(client, name, {"python/mylib.py": "VALUE = 3\n"}).version == 3

    expect_error("InvalidArgument", 400, publish, client, "9-bad-name", {"a": "b"})
    expect_error("LayerNotFound", 404, client.get_layer_version, unique("nolayer"), "1")


def test_unknown_layers_are_refused_and_nothing_is_stored(client: Client, service: str):
    name = unique("lyr")
    publish(client, name, {"python/mylib.py": "VALUE = 1\n"})
    fn = unique("fn")
    for layers, code, status in [
        ([arn(name, 2)], "LayerNotFound", 404),
        ([arn(unique("nolayer"), 1)], "LayerNotFound", 404),
        ([f"acs:fc:{REGION}:{ACCOUNT_ID}:layers/{name}"], "InvalidArgument", 400),
        ([arn(name, 1)] * 6, "InvalidArgument", 400),
    ]:
        expect_error(code, status, create_function, client, service, fn, files={"index.py": PY_HANDLER}, layers=layers)
        expect_error("FunctionNotFound", 404, client.get_function, service, fn, m.GetFunctionRequest())

    created = create_function(client, service, fn, files={"index.py": PY_HANDLER}, layers=[arn(name, 1)])
    assert created.layers == [arn(name, 1)] and created.layers_arn_v2 == [arn(name, 1)]
    expect_error(
        "LayerNotFound",
        404,
        client.update_function,
        service,
        fn,
        m.UpdateFunctionRequest(layers=[arn(name, 1), arn(name, 7)]),
    )
    got = client.get_function(service, fn, m.GetFunctionRequest()).body
    assert got.layers == [arn(name, 1)] and got.layers_arn_v2 == [arn(name, 1)]


def _python_layers_run(client: Client, service: str):
    lib = unique("pylib")
    tools = unique("tools")
    publish(client, lib, {"python/mylib.py": "VALUE = 'from the layer'\n", "which.txt": "lib"})
    publish(
        client,
        tools,
        {"bin/layertool": "#!/bin/sh\necho tool\n", "which.txt": "tools", "python/mylib.py": "VALUE = 'shadowed'\n"},
    )
    fn = create_function(client, service, files={"index.py": PY_HANDLER}, layers=[arn(lib, 1), arn(tools, 1)])
    out = invoke_json(client, service, fn.function_name)
    # The first layer wins a name both have; the second's other files are there too.
    assert out["value"] == "from the layer"
    assert out["first"] == "lib"
    assert out["tool"] and out["tool"].endswith("/bin/layertool")
    return lib, fn.function_name


def _jailed(client: Client) -> bool:
    return bool(server_status(client).get("isolation", {}).get("jailed"))


@pytest.mark.invoke
def test_python_function_imports_its_layer(client: Client, service: str):
    lib, fn = _python_layers_run(client, service)
    if _jailed(client):
        out = invoke_json(client, service, fn)
        assert out["file"] == "/opt/python/mylib.py"
    # A published version keeps its layers; deleting the layer version breaks neither the
    # version nor LATEST, even at the next cold start.
    client.publish_service_version(service, m.PublishServiceVersionRequest())
    client.delete_layer_version(lib, "1")
    client.update_function(service, fn, m.UpdateFunctionRequest(description="cold start again"))
    assert invoke_json(client, service, fn)["value"] == "from the layer"
    assert invoke_json(client, service, fn, qualifier="1")["value"] == "from the layer"
    # But it can no longer be attached.
    expect_error(
        "LayerNotFound", 404, create_function, client, service, unique("fn"), files={"index.py": PY_HANDLER}, layers=[arn(lib, 1)]
    )


@pytest.mark.invoke
def test_layers_without_a_jail(tmp_path: Path):
    """``--isolation none``: the instance is pointed at the merged layers through its
    environment instead of a mount at /opt."""
    server = _new_server(tmp_path, owner="layers-no-jail", extra_args=("--isolation", "none"))
    server.start()
    try:
        client = server.client()
        assert not _jailed(client)
        service = unique("svc")
        client.create_service(m.CreateServiceRequest(service_name=service))
        _python_layers_run(client, service)
    finally:
        server.stop()


@pytest.mark.invoke
def test_nodejs_function_requires_its_layer(client: Client, service: str):
    name = unique("nodelib")
    publish(
        client,
        name,
        {"nodejs/node_modules/x/index.js": "module.exports = { value: 'x from the layer' };\n"},
        runtimes=("nodejs18",),
    )
    fn = create_function(
        client, service, files={"index.js": NODE_HANDLER}, runtime="nodejs18", handler="index.handler", layers=[arn(name, 1)]
    )
    out = invoke_json(client, service, fn.function_name)
    assert out["value"] == "x from the layer"
    if _jailed(client):
        assert out["where"] == "/opt/nodejs/node_modules/x/index.js"
