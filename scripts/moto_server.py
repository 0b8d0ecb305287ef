"""Starts moto's server with the patches converge's tests need.

moto 5.2.5 drops two fields of a CloudFront S3 origin that converge sets
and reads back (issue 11 B): `OriginAccessControlId` and
`S3OriginConfig`. AWS keeps both; without them every plan against moto
would show the distribution's origin access as drifted. The patch keeps
them on moto's origin object, which moto's serializer then returns.

moto 5.2.5 also never frees a terminated instance's private address: the
primary network interface it makes from RunInstances' top-level
parameters is not deleted on termination, so the address stays taken
and a successor launched at it (a Fleet's `privateIps`) fails with a bare
"IP already in use". On AWS the primary interface RunInstances creates is
deleted with its instance, and the address is free again once the
instance is terminated. The patch frees the instance's addresses in its
subnet when it is terminated.

moto 5.2.5 also ignores the tags CreateBucket carries in its
CreateBucketConfiguration, which AWS sets with the bucket. converge sends
them there and tags again after, but when the create's answer is lost and
the step fails before the second tagging, moto holds an untagged bucket
that converge (rightly) refuses to adopt as the stack's, where AWS would
hold a tagged one. The patch sets those tags with the bucket, as AWS does.

Nothing else changes; scripts/moto.sh runs this in place of moto_server.
"""

import sys

from moto.cloudfront import models as cloudfront_models

_origin_init = cloudfront_models.Origin.__init__


def _origin_keeps_access(self, origin):
    _origin_init(self, origin)
    self.origin_access_control_id = origin.get("OriginAccessControlId") or ""
    if "S3OriginConfig" in origin:
        self.s3_origin_config = {
            "OriginAccessIdentity": origin["S3OriginConfig"].get("OriginAccessIdentity") or ""
        }


cloudfront_models.Origin.__init__ = _origin_keeps_access

from moto.ec2.models import instances as instance_models

_terminate = instance_models.Instance.terminate


def _terminate_frees_addresses(self):
    state = _terminate(self)
    if self.subnet_id:
        subnet = self.ec2_backend.get_subnet(self.subnet_id)
        for ip in list(self._private_ips):
            subnet.del_subnet_ip(ip)
    return state


instance_models.Instance.terminate = _terminate_frees_addresses

import xmltodict
from moto.s3 import responses as s3_responses

_bucket_put = s3_responses.S3Response._bucket_response_put


def _bucket_put_keeps_create_tags(self, request, bucket_name, querystring):
    result = _bucket_put(self, request, bucket_name, querystring)
    if querystring or not self.body:
        return result
    try:
        config = xmltodict.parse(self.body).get("CreateBucketConfiguration") or {}
    except Exception:
        return result
    tags = (config.get("Tags") or {}).get("Tag") or []
    if isinstance(tags, dict):
        tags = [tags]
    if tags:
        self.backend.put_bucket_tagging(
            bucket_name, {t["Key"]: t.get("Value") or "" for t in tags}
        )
    return result


s3_responses.S3Response._bucket_response_put = _bucket_put_keeps_create_tags

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
