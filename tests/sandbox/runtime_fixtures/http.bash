# A minimal HTTP/1.1 client in bash over /dev/tcp (no curl: provided.al2023 images have only curl-minimal,
# and the test must not depend on it). Sourced by the test bootstrap and the test extension.
# http METHOD PATH BODY [HEADER...] sets HTTP_STATUS, HTTP_BODY and HTTP_HEADERS (lower-cased names).
export LC_ALL=C
_API_HOST="${AWS_LAMBDA_RUNTIME_API%:*}"
_API_PORT="${AWS_LAMBDA_RUNTIME_API##*:}"

http() {
  local method=$1 path=$2 body=${3:-} line name value len=0
  shift 3 || shift $#
  exec 3<>"/dev/tcp/$_API_HOST/$_API_PORT" || return 1
  {
    printf '%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n' \
      "$method" "$path" "$AWS_LAMBDA_RUNTIME_API" "${#body}"
    for line in "$@"; do printf '%s\r\n' "$line"; done
    printf '\r\n%s' "$body"
  } >&3
  IFS= read -r line <&3
  line=${line%$'\r'}
  HTTP_STATUS=${line#* }
  HTTP_STATUS=${HTTP_STATUS%% *}
  HTTP_HEADERS=""
  while IFS= read -r line <&3; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    name=${line%%:*}
    value=${line#*: }
    HTTP_HEADERS+="${name,,}: $value"$'\n'
    [ "${name,,}" = "content-length" ] && len=$value
  done
  HTTP_BODY=""
  if [ "$len" -gt 0 ]; then
    IFS= read -r -d '' -N "$len" HTTP_BODY <&3
  fi
  exec 3<&-
}

header() {   # header NAME: its value in the last response
  local line
  while IFS= read -r line; do
    if [ "${line%%: *}" = "$1" ]; then printf '%s' "${line#*: }"; return 0; fi
  done <<< "$HTTP_HEADERS"
  return 1
}
