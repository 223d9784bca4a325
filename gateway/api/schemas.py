"""Response shapes shared by every app's OpenAPI schema (the JSON itself comes from the presenters)."""
from rest_framework import serializers


class ErrorDetailSchema(serializers.Serializer):
    type = serializers.CharField()
    code = serializers.CharField(required=False)
    message = serializers.CharField()
    param = serializers.CharField(required=False)
    doc_url = serializers.CharField(required=False)


class ErrorSchema(serializers.Serializer):
    error = ErrorDetailSchema()


ERRORS = {400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema}
