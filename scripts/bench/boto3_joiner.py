"""What a platform team would write instead of identity-sync: a small Python + boto3 Lambda that
creates the joiner's Identity Store user with the same attributes and adds it to its groups. It
does less than identity-sync (no ledger, no idempotency, no ownership checks, no enterprise
attributes or manager: boto3's CreateUser model has no Extensions; no DLQ). It runs
its own minimal Runtime API loop (what the Lambda Python runtime does), so the benchmark can spawn
it as a fresh process, like a cold start."""

import json
import os
import urllib.request

import boto3

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
STORE = os.environ["IDENTITY_STORE_ID"]
ids = boto3.client("identitystore")


def handler(event):
    for record in event["Records"]:
        e = json.loads(record["body"])
        p = e["person"]
        address = p.get("address", {})
        user = ids.create_user(
            IdentityStoreId=STORE,
            UserName=p["userName"],
            DisplayName=p["displayName"],
            Name={
                "GivenName": p["name"]["givenName"],
                "FamilyName": p["name"]["familyName"],
                "HonorificPrefix": p["name"].get("honorificPrefix", ""),
            },
            Emails=[{"Value": p["email"], "Type": "work", "Primary": True}],
            PhoneNumbers=[{"Value": p["phone"], "Type": "work", "Primary": True}],
            Addresses=[{"Locality": address.get("locality", ""), "Country": address.get("country", ""),
                        "Type": "work", "Primary": True}],
            Title=p["title"],
            UserType=p["userType"],
            PreferredLanguage=p["preferredLanguage"],
            Locale=p["locale"],
            Timezone=p["timezone"],
        )["UserId"]
        for g in e["groups"]:
            gid = ids.get_group_id(
                IdentityStoreId=STORE,
                AlternateIdentifier={"UniqueAttribute": {"AttributePath": "displayName", "AttributeValue": g}},
            )["GroupId"]
            ids.create_group_membership(IdentityStoreId=STORE, GroupId=gid, MemberId={"UserId": user})
    return {"batchItemFailures": []}


while True:
    with urllib.request.urlopen(API + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    body = json.dumps(handler(event)).encode()
    urllib.request.urlopen(urllib.request.Request(API + request_id + "/response", data=body, method="POST")).read()
