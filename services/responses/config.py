from shared.settings import ServiceSettings


class ResponsesSettings(ServiceSettings):
    service_name: str = "responses"
    questionnaire_id: str = "kl_core"
    questionnaire_version: int = 1
