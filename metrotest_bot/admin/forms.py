"""WTForms of the admin panel. Every POST form carries `csrf_token` (Flask-WTF)."""
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, PasswordField, SelectField, StringField, SubmitField
from wtforms.meta import DefaultMeta
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..outcomes import OUTCOME_LABELS


class RussianForm(FlaskForm):
    """Built-in validator messages in Russian (WTForms ships the translation)."""

    class Meta:
        locales = ["ru_RU", "ru"]

        def get_translations(self, form):
            return DefaultMeta.get_translations(self, form)


class LoginForm(RussianForm):
    username = StringField("Имя пользователя", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none", "autofocus": True})
    password = PasswordField("Пароль", validators=[DataRequired(), Length(max=256)],
                             render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Войти")


class PasswordChangeForm(RussianForm):
    """The signed-in admin's own password; the rule is checked in account.py (passwords.py)."""

    current = PasswordField("Текущий пароль", validators=[DataRequired(), Length(max=256)],
                            render_kw={"autocomplete": "current-password"})
    new = PasswordField("Новый пароль", validators=[DataRequired(), Length(max=256)],
                        description="Не меньше 12 символов; подойдёт фраза из нескольких слов.",
                        render_kw={"autocomplete": "new-password"})
    repeat = PasswordField("Новый пароль ещё раз", validators=[DataRequired(), Length(max=256)],
                           render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Сменить пароль")

    def validate_repeat(self, field):
        if self.new.data and field.data != self.new.data:
            raise ValidationError("Пароли не совпадают.")


class LogoutForm(RussianForm):
    submit = SubmitField("Выйти")


DATE_MESSAGE = "Дата в формате ГГГГ-ММ-ДД, например 2025-03-01."

# `?outcome=`: the stored outcomes, and «unanswered» for calls with at least one refused question.
UNANSWERED = "unanswered"
OUTCOME_CHOICES = [("", "Все итоги"), *[(k, v) for k, v in OUTCOME_LABELS.items()],
                   (UNANSWERED, "были вопросы без ответа")]
SORT_CHOICES = [("newest", "Сначала новые"), ("oldest", "Сначала старые"), ("longest", "Сначала долгие"),
                ("shortest", "Сначала короткие"), ("most_turns", "Больше реплик"), ("fewest_turns", "Меньше реплик")]


class CallFilterForm(RussianForm):
    """The call list's filters; read from the query string (GET, so no CSRF)."""

    class Meta(RussianForm.Meta):
        csrf = False

    q = StringField("Что говорили", validators=[Optional(), Length(max=200)],
                    render_kw={"placeholder": "например: доставка в Казань", "type": "search"})
    date_from = DateField("С даты", validators=[Optional()], invalid_value_message=DATE_MESSAGE)
    date_to = DateField("По дату", validators=[Optional()], invalid_value_message=DATE_MESSAGE)
    outcome = SelectField("Итог", choices=OUTCOME_CHOICES, default="", validate_choice=False)
    sort = SelectField("Порядок", choices=SORT_CHOICES, default="newest", validate_choice=False)

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("Конечная дата раньше начальной.")

    # Checked here rather than by WTForms, for a message that says what is allowed.
    def validate_outcome(self, field):
        if field.data and field.data not in dict(OUTCOME_CHOICES):
            raise ValidationError("Нет такого итога звонка; выберите из списка.")

    def validate_sort(self, field):
        if field.data and field.data not in dict(SORT_CHOICES):
            raise ValidationError("Нет такого порядка; выберите из списка.")


class ClearForm(RussianForm):
    confirm = BooleanField("Да, удалить все записи звонков без возможности восстановления",
                           render_kw={"value": "yes"})
    submit = SubmitField("Очистить журнал")

    def validate_confirm(self, field):
        if field.raw_data != ["yes"]:
            raise ValidationError("Отметьте подтверждение: без него журнал не очищается.")
