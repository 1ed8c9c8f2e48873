"""Creates on moto (at the endpoint given) what a deployment of identity-sync and iam-sync
needs, and prints the environment `jml doctor` reads, one `export` line each: the test command
then runs `jml doctor` and `jml doctor --canary` against it."""

import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
store = "d-00d0c70000"
ids = boto3.client("identitystore", **kw)
for g in ("jml-all-staff", "jml-engineering"):
    ids.create_group(IdentityStoreId=store, DisplayName=g)
ddb = boto3.client("dynamodb", **kw)
ddb.create_table(
    TableName="jml-doctor-ledger",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
sqs = boto3.client("sqs", **kw)
dlq = sqs.create_queue(QueueName="jml-doctor-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
iam = boto3.client("iam", **kw)
policy = iam.create_policy(
    PolicyName="jml-doctor-boundary",
    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListAllMyBuckets","Resource":"*"}]}',
)["Policy"]["Arn"]
# Under IAM_GROUP_PATH (default /jml/): the role joins only groups there, the preflight checks it.
iam.create_group(GroupName="doctor-all-staff", Path="/jml/")
env = {
    "AWS_ENDPOINT_URL": endpoint,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "IDENTITY_STORE_ID": store,
    "MANAGED_GROUPS": "jml-all-staff,jml-engineering",
    "LEDGER_TABLE": "jml-doctor-ledger",
    "DLQ_URL": dlq,
    "IAM_PERMISSIONS_BOUNDARY": policy,
    "IAM_GROUP_MAP": '{"All Staff": ["doctor-all-staff"]}',
}
for k, v in env.items():
    print(f"export {k}='{v}'")
