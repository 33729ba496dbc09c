"""The OpenAPI 3 document of the public API (/api/public/openapi.json). Every operation carries
examples (parameters, request body, one response per status); tests/hub/test_portal_openapi.py
runs each example against the real app over a store seeded with EXAMPLE_CASE."""

from __future__ import annotations

EXAMPLE_CASE = "140702-001-20261120-0001"  # the example case: finished, query code 00000001
EXAMPLE_CODE = "00000001"
EXAMPLE_ITEM = "XK-001"

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
}


def _err(description: str, message: str) -> dict:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}, "example": {"error": message}}
        },
    }


def _ok(description: str, schema: str, example: dict, status_note: str = "") -> dict:
    return {
        "description": description + status_note,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}, "example": example}},
    }


# complaints (投诉, hub/api_complaints.py): the examples test seeds two replied complaints
EXAMPLE_COMPLAINT, EXAMPLE_COMPLAINT_CODE = "TS20261201000001", "A1B2C3D4"
EXAMPLE_COMPLAINT_2, EXAMPLE_COMPLAINT_CODE_2 = "TS20261201000002", "E5F6G7H8"
COMPLAINT_IN = {
    "about_kind": "case",
    "about": EXAMPLE_CASE,
    "text": "窗口人员让我来回跑了三次",
    "contact_name": "王女士",
    "contact_phone": "13800000000",
}
COMPLAINT_EXAMPLE = {
    "complaint_no": EXAMPLE_COMPLAINT,
    "about_kind": "case",
    "status": "replied",
    "status_zh": "已答复",
    "events": [],
}


def _complaint_param(example: str) -> dict:
    return {"name": "no", "in": "path", "required": True, "example": example,
            "schema": {"type": "string", "maxLength": 32}, "description": "投诉编号"}  # fmt: skip


def _code_param(example: str, where: str) -> dict:
    return {"name": "code", "in": where, "required": True, "example": example,
            "schema": {"type": "string", "maxLength": 32}, "description": "查询码 (given when filed)"}  # fmt: skip


def _step_body(code: str, text: str) -> dict:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ComplaintStep"}, "example": {"code": code, "text": text}}}}  # fmt: skip


def _step_responses(example: dict) -> dict:
    return {
        "200": _ok("the complaint after the step", "Complaint", example),
        "404": _err("wrong number or code", "未找到该投诉，请核对投诉编号和查询码"),
        "409": _err("not possible in its state", "当前状态不能进行此操作"),
    }


ITEM_BRIEF = {"code": EXAMPLE_ITEM, "name": "食品经营许可", "department": "市场监督管理局"}
CASE_EXAMPLE = {
    "case_no": EXAMPLE_CASE,
    "item_code": EXAMPLE_ITEM,
    "item_name": "食品经营许可",
    "department": "市场监督管理局",
    "hall": {"code": "140702-001", "name": "城区政务服务中心"},
    "status": "completed",
    "status_zh": "已办结",
    "progress": {"stage": 3, "stages": ["收件", "受理", "办理", "办结"]},
    "received_on": "2026-11-20",
    "due_date": "2026-12-04",
    "due_provisional": False,
    "legal_due_date": "2026-12-18",
    "events": [{"type": "receive", "type_zh": "收件", "at": "2026-11-20T09:00:00+08:00"}],
    "ratable": True,
    "ratings": [],
}
_CASE_PARAMS = [
    {"name": "case_no", "in": "path", "required": True, "example": EXAMPLE_CASE,
     "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"}, "description": "办件编号"},
]  # fmt: skip

DOCUMENT: dict = {
    "openapi": "3.0.3",
    "info": {
        "title": "监察平台公众服务接口 (Jiancha public API)",
        "version": "1",
        "description": "办事指南, 办件查询, 网上评价 and 结果公示; no login. Lookups and ratings are "
        'rate-limited per client and in total (429). Errors are {"error": ...} in Chinese.',
    },
    "paths": {
        "/api/public/items": {
            "get": {
                "summary": "办事指南搜索: by name, department, code or pinyin initials",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": False,
                        "example": "spjy",
                        "schema": {"type": "string", "maxLength": 50},
                    }
                ],  # fmt: skip
                "responses": {"200": _ok("matching items (at most 50)", "ItemList", {"items": [ITEM_BRIEF]})},
            }
        },
        "/api/public/items/{code}": {
            "get": {
                "summary": "one item's guide (事项详情)",
                "parameters": [
                    {
                        "name": "code",
                        "in": "path",
                        "required": True,
                        "example": EXAMPLE_ITEM,
                        "schema": {"type": "string", "maxLength": 64},
                    }
                ],  # fmt: skip
                "responses": {
                    "200": _ok("the guide", "Item", {**ITEM_BRIEF, "promised_days": 10, "legal_days": 20}),
                    "404": _err("no such item", "未找到该事项 (no such item)"),
                },
            }
        },
        "/api/public/cases/{case_no}": {
            "get": {
                "summary": "办件查询: progress by case number and query code (no personal data)",
                "parameters": [
                    *_CASE_PARAMS,
                    {
                        "name": "code",
                        "in": "query",
                        "required": True,
                        "example": EXAMPLE_CODE,
                        "schema": {"type": "string", "maxLength": 32},
                        "description": "查询码 (on the receipt)",
                    },
                ],  # fmt: skip
                "responses": {
                    "200": _ok("the case's progress", "Case", CASE_EXAMPLE),
                    "404": _err("wrong number or code", "未找到该办件，请核对办件编号和查询码"),
                    "429": _err("too many guesses", "查询过于频繁，请稍后再试"),
                },
            }
        },
        "/api/public/cases/{case_no}/rating": {
            "post": {
                "summary": "网上评价: rate a finished case once (five national levels, 1 = 非常满意 … 5 = 非常不满意)",
                "parameters": _CASE_PARAMS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/RatingIn"},
                            "example": {"code": EXAMPLE_CODE, "level": 1, "comment": "办事很快，态度很好"},
                        }
                    },
                },  # fmt: skip
                "responses": {
                    "201": _ok(
                        "stored",
                        "Rating",
                        {"case_no": EXAMPLE_CASE, "level": 1, "level_name": "非常满意", "channel": "portal"},
                    ),  # fmt: skip
                    "400": _err("bad level or text", "评价等级只能是 1（非常满意）至 5（非常不满意）。"),
                    "404": _err("wrong number or code", "未找到该办件，请核对办件编号和查询码"),
                    "409": _err("not finished, or rated already", "该办件已经评价过，每个办件只能网上评价一次。"),
                    "429": _err("too many guesses", "查询过于频繁，请稍后再试"),
                },
            }
        },
        "/api/public/results": {
            "get": {
                "summary": "结果公示: monthly on-time rates (按时办结率) per department",
                "parameters": [
                    {
                        "name": "until",
                        "in": "query",
                        "required": False,
                        "example": "2026-12",
                        "schema": {"type": "string", "pattern": "^\\d{4}-\\d{2}$"},
                        "description": "last month shown",
                    },
                    {
                        "name": "months",
                        "in": "query",
                        "required": False,
                        "example": "2",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 12, "default": 6},
                    },
                ],  # fmt: skip
                "responses": {
                    "200": _ok(
                        "rates",
                        "Results",
                        {
                            "months": ["2026-11", "2026-12"],
                            "departments": [
                                {
                                    "department": "市场监督管理局",
                                    "months": [
                                        {"month": "2026-11", "finished": 0, "on_time": 0, "rate": None},
                                        {"month": "2026-12", "finished": 1, "on_time": 1, "rate": 100.0},
                                    ],
                                }
                            ],
                        },
                    ),
                    "400": _err("bad month or count", "月份格式应为 YYYY-MM，例如 2026-11。"),
                },  # fmt: skip
            }
        },
        "/api/public/scores": {
            "get": {
                "summary": "绩效评估公示: the department ranking of a closed (frozen) month, quarter or year; "
                "per department its score and the rules that counted (no names, no cases)",
                "parameters": [
                    {
                        "name": "period",
                        "in": "query",
                        "required": False,
                        "example": "2026-11",
                        "schema": {"type": "string", "pattern": "^\\d{4}(-\\d{2}|-Q[1-4])?$"},
                        "description": "2026-11, 2026-Q4 or 2026; default: the latest closed period",
                    }
                ],  # fmt: skip
                "responses": {
                    "200": _ok(
                        "the published ranking",
                        "Scores",
                        {
                            "periods": ["2026-11"],
                            "period": "2026-11",
                            "from": "2026-11-01",
                            "to": "2026-11-30",
                            "base": 100,
                            "departments": [
                                {
                                    "rank": 1,
                                    "department": "市场监督管理局",
                                    "score": 100,
                                    "deductions": 0,
                                    "bonuses": 0,
                                    "disqualified": [],
                                    "rules": [],
                                }
                            ],
                        },
                    ),  # fmt: skip
                    "400": _err("bad or unpublished period", "期间 2026-10 尚未公布（只公布已封存的期间）。"),
                },
            }
        },
        "/api/public/complaints": {
            "post": {
                "summary": "投诉: file a complaint about a case, a window, a person or a hall (contact details kept private)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ComplaintIn"},
                            "example": COMPLAINT_IN,
                        }
                    },
                },  # fmt: skip
                "responses": {
                    "201": _ok(
                        "filed: keep the number and the query code",
                        "ComplaintFiled",
                        {"complaint_no": "TS20261201000001", "query_code": "A1B2C3D4"},
                    ),
                    "400": _err("not a JSON object", "请求体应为 JSON 对象"),
                    "422": _err("a field is missing or too long", "请填写投诉内容"),
                    "429": _err("too many filings", "提交过于频繁，请稍后再试"),
                },  # fmt: skip
            }
        },
        "/api/public/complaints/{no}": {
            "get": {
                "summary": "投诉查询: status, steps and replies by complaint number and query code (no contact details)",
                "parameters": [_complaint_param(EXAMPLE_COMPLAINT), _code_param(EXAMPLE_COMPLAINT_CODE, "query")],
                "responses": {
                    "200": _ok("the complaint as the citizen sees it", "Complaint", COMPLAINT_EXAMPLE),
                    "404": _err("wrong number or code", "未找到该投诉，请核对投诉编号和查询码"),
                    "429": _err("too many guesses", "查询过于频繁，请稍后再试"),
                },
            }
        },
        "/api/public/complaints/{no}/reopen": {
            "post": {
                "summary": "不满意答复: reopen a replied complaint with the citizen's words (back to the department)",
                "parameters": [_complaint_param(EXAMPLE_COMPLAINT)],
                "requestBody": _step_body(EXAMPLE_COMPLAINT_CODE, "答复没有解决问题，请重新办理"),
                "responses": _step_responses({**COMPLAINT_EXAMPLE, "status": "reopened", "status_zh": "已重新交办"}),
            }
        },
        "/api/public/complaints/{no}/confirm": {
            "post": {
                "summary": "满意答复: confirm a replied complaint (it closes)",
                "parameters": [_complaint_param(EXAMPLE_COMPLAINT_2)],
                "requestBody": _step_body(EXAMPLE_COMPLAINT_CODE_2, "满意"),
                "responses": _step_responses(
                    {
                        **COMPLAINT_EXAMPLE,
                        "complaint_no": EXAMPLE_COMPLAINT_2,
                        "status": "closed",
                        "status_zh": "已办结",
                    }
                ),
            }
        },
        "/api/public/openapi.json": {
            "get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3 document"}}}
        },
    },
    "components": {
        "schemas": {
            "Error": _ERROR,
            "ComplaintIn": {
                "type": "object",
                "required": ["about_kind", "about", "text", "contact_name"],
                "properties": {
                    "about_kind": {"type": "string", "enum": ["case", "window", "person", "hall"]},
                    "about": {"type": "string"},
                    "text": {"type": "string"},
                    "contact_name": {"type": "string"},
                    "contact_phone": {"type": "string"},
                    "contact_email": {"type": "string"},
                },
            },
            "ComplaintFiled": {
                "type": "object",
                "required": ["complaint_no", "query_code"],
                "properties": {"complaint_no": {"type": "string"}, "query_code": {"type": "string"}},
            },
            "ComplaintStep": {
                "type": "object",
                "required": ["code"],
                "properties": {"code": {"type": "string"}, "text": {"type": "string"}},
            },
            "Complaint": {
                "type": "object",
                "required": ["complaint_no", "status", "status_zh", "events"],
                "properties": {
                    "complaint_no": {"type": "string"},
                    "about_kind": {"type": "string"},
                    "status": {"type": "string"},
                    "status_zh": {"type": "string"},
                    "events": {"type": "array", "items": {"type": "object"}},
                },
            },
            "ItemBrief": {
                "type": "object",
                "required": ["code", "name", "department"],
                "properties": {
                    "code": {"type": "string"},
                    "name": {"type": "string"},
                    "department": {"type": "string"},
                },
            },
            "ItemList": {
                "type": "object",
                "required": ["items"],
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/ItemBrief"}}},
            },
            "Item": {
                "type": "object",
                "required": ["code", "name", "department", "promised_days", "legal_days"],
                "properties": {
                    "code": {"type": "string"},
                    "name": {"type": "string"},
                    "promised_days": {"type": "integer"},
                    "legal_days": {"type": "integer"},
                },
            },
            "Case": {
                "type": "object",
                "required": ["case_no", "status", "status_zh", "events", "hall", "progress"],
                "properties": {
                    "case_no": {"type": "string"},
                    "status": {"type": "string"},
                    "events": {"type": "array"},
                    "hall": {"type": "object"},
                },
            },
            "RatingIn": {
                "type": "object",
                "required": ["code", "level"],
                "properties": {
                    "code": {"type": "string", "maxLength": 32},
                    "level": {"type": "integer", "minimum": 1, "maximum": 5},
                    "comment": {"type": "string", "maxLength": 500},
                },
            },
            "Rating": {
                "type": "object",
                "required": ["case_no", "level", "level_name", "channel"],
                "properties": {"level": {"type": "integer"}, "level_name": {"type": "string"}},
            },
            "Results": {
                "type": "object",
                "required": ["months", "departments"],
                "properties": {"months": {"type": "array"}, "departments": {"type": "array"}},
            },
            "Scores": {
                "type": "object",
                "required": ["periods", "period", "from", "to", "base", "departments"],
                "properties": {
                    "periods": {"type": "array"},
                    "period": {"type": ["string", "null"]},
                    "departments": {"type": "array"},
                },
            },
        }  # fmt: skip
    },
}
