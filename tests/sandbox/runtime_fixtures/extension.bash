#!/bin/bash
# A test extension in bash (no interpreter needed): registers for INVOKE and SHUTDOWN and prints one line per
# event; its first line says whether a python or node executable is visible to it.
set -u
name=$(basename "$0")
. "/opt/${name}-lib/http.bash"
echo "EXT $name sees python=$(command -v python3 || command -v python || echo none) node=$(command -v node || echo none)"
http POST /2020-01-01/extension/register '{"events":["INVOKE","SHUTDOWN"]}' "Lambda-Extension-Name: $name"
id=$(header lambda-extension-identifier)
echo "EXT $name registered status=$HTTP_STATUS"
while true; do
  http GET /2020-01-01/extension/event/next "" "Lambda-Extension-Identifier: $id"
  case "$HTTP_BODY" in
    *'"SHUTDOWN"'*) echo "EXT $name SHUTDOWN"; exit 0 ;;
    *'"INVOKE"'*) rid=${HTTP_BODY#*\"requestId\":\"}; echo "EXT $name INVOKE ${rid%%\"*}" ;;
  esac
done
