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

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
