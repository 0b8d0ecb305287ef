"""Starts moto's server with the patches converge's tests need.

moto 5.2.5 drops two fields of a CloudFront S3 origin that converge sets
and reads back (issue 11 B): `OriginAccessControlId` and
`S3OriginConfig`. AWS keeps both; without them every plan against moto
would show the distribution's origin access as drifted. The patch keeps
them on moto's origin object, which moto's serializer then returns.
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

if __name__ == "__main__":
    from moto.server import main

    sys.exit(main())
