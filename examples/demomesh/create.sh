#!/usr/bin/env bash
# Builds step 1 of the reference walkthrough (mesh demomesh) with the AWS CLI against an aviary
# control plane, from the JSON files in appmesh/. Usage: create.sh http://127.0.0.1:PORT
#
# Order matters: the mesh first, then every node before the routes that target it, every router
# before its routes and the virtual service it provides, and the order service before the gateway
# route that sends traffic to it.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 ENDPOINT_URL   (for example http://127.0.0.1:7000)" >&2
  exit 2
fi
endpoint=$1
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/appmesh"

# aviary checks every SigV4 signature: without credentials of the caller's own, sign with the
# keys the first start of `aviary demo` / `aviary control` wrote in ./.aviary.
if [[ -z "${AWS_ACCESS_KEY_ID:-}" && -z "${AWS_SHARED_CREDENTIALS_FILE:-}" && -f .aviary/credentials ]]; then
  export AWS_SHARED_CREDENTIALS_FILE="$PWD/.aviary/credentials"
fi
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-west-2}"
export AWS_PAGER=""

# create OPERATION OUTPUT_KEY FILE: runs `aws appmesh OPERATION` with FILE and prints the new ARN.
create() {
  local op=$1 key=$2 file=$3
  aws --endpoint-url "$endpoint" appmesh "$op" \
    --cli-input-json "file://$dir/$file" \
    --query "$key.metadata.arn" --output text
}

create create-mesh            mesh           mesh.json
create create-virtual-node    virtualNode    product-vn.json
create create-virtual-node    virtualNode    customer-vn.json
create create-virtual-router  virtualRouter  product-vr.json
create create-virtual-router  virtualRouter  customer-vr.json
create create-route           route          product-r.json
create create-route           route          customer-r.json
create create-virtual-service virtualService vs-product.json
create create-virtual-service virtualService vs-customer.json
create create-virtual-node    virtualNode    order-vn.json
create create-virtual-router  virtualRouter  order-vr.json
create create-route           route          order-r.json
create create-virtual-service virtualService vs-order.json
create create-virtual-gateway virtualGateway demo-gw.json
create create-gateway-route   gatewayRoute   order-gr.json
