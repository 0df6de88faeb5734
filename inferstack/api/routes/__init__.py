"""The API's routes, one `APIRouter` per capability, composed by `inferstack.api.app.create_app`."""
