"""The web console (being written): pages under /console, on the API's functions."""

from fastapi import APIRouter

router = APIRouter()
