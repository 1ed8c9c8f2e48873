"""moto server for jml-sync's end-to-end tests, with a small extension loaded at start-up.

moto 5.2.5 serves identitystore CreateUser / GetUserId(userName) / DescribeUser / CreateGroup /
CreateGroupMembership / ListGroupMembershipsForMember / DeleteGroupMembership, DynamoDB and SQS.
It does not implement what jml-sync's mover and leaver paths need; this file adds, in process:

- identitystore UpdateUser: the attribute paths jml-sync writes (userName with the uniqueness
  check, displayName, name.*, title, userType, preferredLanguage, locale, timezone, profileUrl,
  emails, phoneNumbers, addresses, userStatus, aws:identitystore:enterprise.*); an unknown path is
  a ValidationException, a missing user a ResourceNotFoundException;
- DescribeUser: returns UserStatus (default ENABLED) and, when asked for, the enterprise extension
  given at CreateUser or written by UpdateUser;
- GetUserId with the ExternalId alternate identifier: CreateUser cannot set ExternalIds, so no
  user created here has one: ResourceNotFoundException, which is the real service's answer for
  such users (instead of moto's HTTP 500).

IAM (moto serves users, groups, login profiles, access keys and tags, but 5.2.5 drops a user's
permissions boundary, and keys a user's tags by its ARN, which UpdateUser NewPath/NewUserName
changes): CreateUser keeps `PermissionsBoundary` (checked like moto checks a role's), GetUser
returns it, PutUserPermissionsBoundary sets it; UpdateUser carries the tags to the new ARN, as
real IAM keeps a user's tags across a path change or rename. moto has no service-specific
credentials: Create/List/UpdateServiceSpecificCredential are added over a small in-process store
(NoSuchEntity for an unknown user or credential, as IAM answers).

Usage: python scripts/moto_jml.py PORT   (listens on 127.0.0.1 only)
"""

import json
import sys

from moto.identitystore import models, responses
from moto.identitystore.exceptions import (
    ConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from moto.server import main as moto_main

ENTERPRISE = "aws:identitystore:enterprise"
# (identity store id, user id) -> {"UserStatus": str, "Extensions": {name: dict}}
EXTRA: dict = {}

TOP_LEVEL = {
    "displayName": "DisplayName",
    "nickName": "NickName",
    "profileUrl": "ProfileUrl",
    "title": "Title",
    "userType": "UserType",
    "preferredLanguage": "PreferredLanguage",
    "locale": "Locale",
    "timezone": "Timezone",
    "emails": "Emails",
    "phoneNumbers": "PhoneNumbers",
    "addresses": "Addresses",
}
NAME_PARTS = {
    "givenName": "GivenName",
    "familyName": "FamilyName",
    "middleName": "MiddleName",
    "honorificPrefix": "HonorificPrefix",
    "honorificSuffix": "HonorificSuffix",
    "formatted": "Formatted",
}


# UpdateUser takes multi-valued attributes in SCIM-style lower camel case (the Terraform AWS
# provider's acceptance-tested update); DescribeUser answers the model's shape. Any other key
# (e.g. "Value") is rejected, so the tests prove the shape production code uses.
MULTI_VALUED = {
    "emails": {"value": "Value", "type": "Type", "primary": "Primary"},
    "phoneNumbers": {"value": "Value", "type": "Type", "primary": "Primary"},
    "addresses": {
        "streetAddress": "StreetAddress",
        "locality": "Locality",
        "region": "Region",
        "postalCode": "PostalCode",
        "country": "Country",
        "formatted": "Formatted",
        "type": "Type",
        "primary": "Primary",
    },
}


def _multi_valued(path, value):
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ValidationException(message=f"{path}: expected a list of objects")
    keys = MULTI_VALUED[path]
    out = []
    for entry in value:
        unknown = [k for k in entry if k not in keys]
        if unknown:
            raise ValidationException(message=f"{path}: unknown key {unknown[0]}")
        out.append({keys[k]: v for k, v in entry.items()})
    return out


def _store(backend, store_id):
    return backend._IdentityStoreBackend__get_identity_store(store_id)


def update_user(self, identity_store_id, user_id, operations):
    store = _store(self, identity_store_id)
    user = store.users.get(user_id)
    if user is None:
        raise ResourceNotFoundException(message="USER not found.", resource_type="USER")
    if not operations or len(operations) > 100:
        raise ValidationException(message="Operations must hold 1 to 100 items")
    fields = user._asdict()
    name = user.Name._asdict() if user.Name else {}
    extra = EXTRA.setdefault((identity_store_id, user_id), {})
    for op in operations:
        path = op.get("AttributePath", "")
        if "AttributeValue" not in op:
            # What production code sends (the Terraform provider): an explicit null to unset.
            raise ValidationException(message=f"{path}: AttributeValue is required (null to remove the attribute)")
        value = op.get("AttributeValue")
        if path == "userName":
            if not value:
                raise ValidationException(message="userName cannot be removed")
            taken = [u for u in store.users.values() if u.UserName == value and u.UserId != user_id]
            if taken:
                # The API reference: Reason is absent for errors other than KMS ones.
                raise ConflictException(message="Duplicate UserName")
            fields["UserName"] = value
        elif path in MULTI_VALUED:
            fields[TOP_LEVEL[path]] = _multi_valued(path, value)
        elif path in TOP_LEVEL:
            fields[TOP_LEVEL[path]] = value
        elif path.startswith("name.") and path[5:] in NAME_PARTS:
            name[NAME_PARTS[path[5:]]] = value
        elif path == "userStatus":
            if value not in ("ENABLED", "DISABLED"):
                raise ValidationException(message="userStatus must be ENABLED or DISABLED")
            extra["UserStatus"] = value
        elif path.startswith(ENTERPRISE + "."):
            ext = extra.setdefault("Extensions", {}).setdefault(ENTERPRISE, {})
            key = path[len(ENTERPRISE) + 1 :]
            if value is None:
                ext.pop(key, None)
            else:
                ext[key] = value
        else:
            raise ValidationException(message=f"The attribute {path} is not supported by this test server")
    fields["Name"] = models.Name.from_dict({k: v for k, v in name.items() if v is not None})
    store.users[user_id] = models.User(**fields)


original_get_user_id = models.IdentityStoreBackend.get_user_id


def get_user_id(self, identity_store_id, alternate_identifier):
    if "ExternalId" in alternate_identifier:
        _store(self, identity_store_id)
        raise ResourceNotFoundException(message="USER not found.", resource_type="USER")
    return original_get_user_id(self, identity_store_id, alternate_identifier)


def response_update_user(self):
    store_id = self._get_param("IdentityStoreId")
    user_id = self._get_param("UserId")
    self.identitystore_backend.update_user(store_id, user_id, self._get_param("Operations"))
    return json.dumps({"IdentityStoreId": store_id, "UserId": user_id, "UserArn": f"arn:aws:identitystore:::user/{user_id}", "Revision": "2"})


original_create_user = responses.IdentityStoreResponse.create_user


def response_create_user(self):
    body = json.loads(original_create_user(self))
    extensions = self._get_param("Extensions")
    if extensions:
        EXTRA.setdefault((body["IdentityStoreId"], body["UserId"]), {})["Extensions"] = extensions
    body.setdefault("UserArn", f"arn:aws:identitystore:::user/{body['UserId']}")
    body.setdefault("Revision", "1")
    return json.dumps(body)


original_describe_user = responses.IdentityStoreResponse.describe_user


def response_describe_user(self):
    body = json.loads(original_describe_user(self))
    extra = EXTRA.get((body["IdentityStoreId"], body["UserId"]), {})
    body["UserStatus"] = extra.get("UserStatus", "ENABLED")
    wanted = self._get_param("Extensions") or []
    exts = {k: v for k, v in extra.get("Extensions", {}).items() if k in wanted and v}
    if exts:
        body["Extensions"] = exts
    if body.get("ExternalIds") is None:
        body.pop("ExternalIds", None)
    return json.dumps(body)


original_list_users = responses.IdentityStoreResponse.list_users


def response_list_users(self):
    # ListUsers returns User objects as DescribeUser does (the model's User shape), UserStatus
    # included: reconciliation reads status from the listing.
    body = json.loads(original_list_users(self))
    for user in body.get("Users", []):
        extra = EXTRA.get((user.get("IdentityStoreId"), user.get("UserId")), {})
        user["UserStatus"] = extra.get("UserStatus", "ENABLED")
        if user.get("ExternalIds") is None:
            user.pop("ExternalIds", None)
    return json.dumps(body)


responses.IdentityStoreResponse.list_users = response_list_users
models.IdentityStoreBackend.update_user = update_user
models.IdentityStoreBackend.get_user_id = get_user_id
responses.IdentityStoreResponse.update_user = response_update_user
responses.IdentityStoreResponse.create_user = response_create_user
responses.IdentityStoreResponse.describe_user = response_describe_user


# --- IAM: a user's permissions boundary -------------------------------------------------------
from moto.iam import models as iam_models  # noqa: E402
from moto.iam import responses as iam_responses  # noqa: E402
from moto.iam.exceptions import InvalidInput  # noqa: E402


def _user_boundary(self):
    arn = getattr(self, "permissions_boundary_arn", None)
    if arn:
        return {"PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": arn}
    return None


def _set_boundary(backend, user_name, arn):
    if not backend.policy_arn_regex.match(arn):
        raise InvalidInput(f"ARN {arn} is not valid.")
    backend.get_user(user_name).permissions_boundary_arn = arn


original_iam_create_user = iam_responses.IamResponse.create_user


def iam_create_user(self):
    boundary = self._get_param("PermissionsBoundary")
    if boundary and not self.backend.policy_arn_regex.match(boundary):
        raise InvalidInput(f"ARN {boundary} is not valid.")
    result = original_iam_create_user(self)
    if boundary:
        _set_boundary(self.backend, self._get_param("UserName"), boundary)
    return result


def iam_put_user_permissions_boundary(self):
    # get_user raises NoSuchEntity for an unknown user, as IAM does.
    _set_boundary(self.backend, self._get_param("UserName"), self._get_param("PermissionsBoundary"))
    return iam_responses.EmptyResult()


original_iam_update_user = iam_models.IAMBackend.update_user


def iam_update_user(self, user_name, new_path=None, new_user_name=None):
    old_arn = self.get_user(user_name).arn
    tags = self.tagger.list_tags_for_resource(old_arn)["Tags"]
    original_iam_update_user(self, user_name, new_path, new_user_name)
    new_arn = self.get_user(new_user_name or user_name).arn
    if tags and new_arn != old_arn:
        self.tagger.delete_all_tags_for_resource(old_arn)
        self.tagger.tag_resource(new_arn, tags)


# Service-specific credentials: user name -> list of credential dicts (the metadata shape).
SERVICE_CREDENTIALS: dict = {}


def iam_create_service_specific_credential(self):
    from moto.core.utils import utcnow
    from moto.iam.utils import random_access_key

    user = self.backend.get_user(self._get_param("UserName"))
    cred = {
        "CreateDate": utcnow(),
        "ServiceName": self._get_param("ServiceName"),
        "ServiceUserName": f"{user.name}-at-{self.current_account}",
        "ServiceSpecificCredentialId": "ACCA" + random_access_key(),
        "UserName": user.name,
        "Status": "Active",
    }
    SERVICE_CREDENTIALS.setdefault(user.name, []).append(cred)
    return iam_responses.ActionResult({"ServiceSpecificCredential": {**cred, "ServicePassword": "not-a-secret"}})


def iam_list_service_specific_credentials(self):
    user = self.backend.get_user(self._get_param("UserName"))
    creds = SERVICE_CREDENTIALS.get(user.name, [])
    return iam_responses.ActionResult({"ServiceSpecificCredentials": creds, "IsTruncated": False})


def iam_update_service_specific_credential(self):
    from moto.iam.exceptions import NoSuchEntity

    user = self.backend.get_user(self._get_param("UserName"))
    wanted = self._get_param("ServiceSpecificCredentialId")
    for cred in SERVICE_CREDENTIALS.get(user.name, []):
        if cred["ServiceSpecificCredentialId"] == wanted:
            cred["Status"] = self._get_param("Status")
            return iam_responses.EmptyResult()
    raise NoSuchEntity(f"No such credential {wanted}")


iam_responses.IamResponse.create_service_specific_credential = iam_create_service_specific_credential
iam_responses.IamResponse.list_service_specific_credentials = iam_list_service_specific_credentials
iam_responses.IamResponse.update_service_specific_credential = iam_update_service_specific_credential
iam_models.IAMBackend.update_user = iam_update_user
iam_models.User.permissions_boundary = property(_user_boundary)
iam_responses.IamResponse.create_user = iam_create_user
iam_responses.IamResponse.put_user_permissions_boundary = iam_put_user_permissions_boundary

if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: moto_jml.py PORT")
    moto_main(["-H", "127.0.0.1", "-p", sys.argv[1]])
