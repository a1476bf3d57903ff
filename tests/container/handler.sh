#!/bin/sh
# One HTTP/1.1 exchange on stdin/stdout, run by `busybox nc -ll -e` per connection (see serve).
# The custom-container test images' function: FC's custom-container protocol needs
#   POST /invoke      -> 200, a JSON report of what the function sees (below)
#   POST /initialize  -> 200 (an initializer hook)
#   GET  /health      -> 200 (customHealthCheckConfig.httpGetUrl)
#   GET  /unhealthy   -> 503 (a health check that never passes)
#   anything else     -> 200, the same report (an HTTP trigger's request, any method and path)
# The report: {"version": <the image's /etc/fixture-version>, "method", "path", "query",
# "body", "body_b64", "request_id", "args": <serve's arguments>, "uid", "cwd",
# "env": {<selected variables, null when unset>}, "root_write", "image_dir_write",
# "tmp_write", "v1_only_file", "dev_null", "proc"}. A *_write is "ok" or the error the shell
# printed. Each request also writes one line to stderr (the instance's log).
# A body comes with Content-Length or chunked. Every answer has Content-Length and
# `Connection: close`: one request per connection.
# Written for busybox ash; no bash-isms. Bodies are text (a shell variable holds no NUL byte).

cr="$(printf '\r')"
tab="$(printf '\t')"
nl="
"

# json_str TEXT: TEXT as a JSON string literal (quotes included). Text with nothing to escape
# (the usual case) costs no process: every fork counts in a cold start.
json_str() {
  case "$1" in
    *[\\\"$cr$tab$nl]*) ;;
    *)
      printf '"%s"' "$1"
      return
      ;;
  esac
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/$cr/\\\\r/g" -e 's/\t/\\t/g' \
    | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n/\\n/g' | { printf '"'; cat; printf '"'; }
}

# env_json NAME...: {"NAME": "value" | null, ...}
env_json() {
  sep=""
  printf '{'
  for name in "$@"; do
    eval "isset=\${$name+x}"
    if [ -n "$isset" ]; then
      eval "value=\$$name"
      printf '%s"%s": %s' "$sep" "$name" "$(json_str "$value")"
    else
      printf '%s"%s": null' "$sep" "$name"
    fi
    sep=", "
  done
  printf '}'
}

# try_write FILE: "ok" if FILE can be created (and removes it), else the error message.
try_write() {
  if out="$( (echo probe >"$1") 2>&1)"; then
    rm -f "$1"
    echo ok
  else
    echo "${out:-failed}" | head -n 1
  fi
}

# decode_chunked: a chunked request body from stdin to stdout. dd reads byte by byte, so the
# chunk-size lines that follow stay on stdin for `read`.
decode_chunked() {
  while IFS= read -r size; do
    size="${size%"$cr"}"
    size="${size%%;*}"
    case "$size" in '' | *[!0-9a-fA-F]*) return ;; esac
    n=$((0x$size))
    if [ "$n" -eq 0 ]; then
      while IFS= read -r trailer; do
        [ -z "${trailer%"$cr"}" ] && return
      done
      return
    fi
    dd bs=1 count="$n" status=none
    IFS= read -r _
  done
}

reply() { # STATUS-LINE CONTENT-TYPE BODY
  len="$(printf '%s' "$3" | wc -c)"
  printf 'HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' \
    "$1" "$2" "$len" "$3"
}

read -r method target proto || exit 0
proto="${proto%"$cr"}"
length=0
request_id=""
while IFS= read -r line; do
  line="${line%"$cr"}"
  [ -z "$line" ] && break
  value="${line#*:}"
  value="${value# }"
  case "$line" in
    [Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]:*) length="$value" ;;
    [Xx]-[Ff][Cc]-[Rr][Ee][Qq][Uu][Ee][Ss][Tt]-[Ii][Dd]:*) request_id="$value" ;;
    [Tt][Rr][Aa][Nn][Ss][Ff][Ee][Rr]-[Ee][Nn][Cc][Oo][Dd][Ii][Nn][Gg]:*[Cc][Hh][Uu][Nn][Kk][Ee][Dd]*) chunked=1 ;;
  esac
done
case "$length" in '' | *[!0-9]*) length=0 ;; esac
body=""
if [ -n "${chunked-}" ]; then
  body="$(decode_chunked)"
elif [ "$length" -gt 0 ]; then
  body="$(head -c "$length")"
fi
path="${target%%\?*}"
query=""
case "$target" in *\?*) query="${target#*\?}" ;; esac

case "$method $path" in
  "POST /initialize" | "GET /health")
    reply "200 OK" "text/plain" "ok"
    exit 0
    ;;
  "GET /unhealthy")
    reply "503 Service Unavailable" "text/plain" "unhealthy on purpose"
    exit 0
    ;;
esac

# No /dev/null needed anywhere: an image's /dev may be empty.
# To the instance's log (nc's stderr, never the socket): a test reads it in a log tail.
echo "fixture handler: $method $path request ${request_id:-none}" >&2
version=unknown
[ -r /etc/fixture-version ] && version="$(cat /etc/fixture-version)"
if [ -e /etc/v1-only ]; then v1_only=true; else v1_only=false; fi
# What the platform mounts over an image's (possibly empty) /dev and /proc.
if [ -c /dev/null ]; then dev_null=true; else dev_null=false; fi
if [ -r /proc/self/status ]; then proc=true; else proc=false; fi
report="{\"version\": $(json_str "$version"), \"method\": $(json_str "$method"), \
\"path\": $(json_str "$path"), \"query\": $(json_str "$query"), \"body\": $(json_str "$body"), \
\"body_b64\": $(json_str "$(printf '%s' "$body" | base64 -w 0)"), \
\"request_id\": $(json_str "$request_id"), \"args\": $(json_str "${SERVE_ARGS-}"), \
\"uid\": $(json_str "$(id -u)"), \"cwd\": $(json_str "$(pwd)"), \
\"env\": $(env_json FC_FUNCTION_NAME FC_SERVICE_NAME FC_SERVER_PORT FIXTURE_VAR IMAGE_VAR PATH), \
\"root_write\": $(json_str "$(try_write /fixture-probe)"), \
\"image_dir_write\": $(json_str "$(try_write /data/fixture-probe)"), \
\"tmp_write\": $(json_str "$(try_write /tmp/fixture-probe)"), \
\"v1_only_file\": $v1_only, \"dev_null\": $dev_null, \"proc\": $proc}"
reply "200 OK" "application/json" "$report"
