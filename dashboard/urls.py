from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from dashboard import views, views_drill, views_whatif

app_name = "dashboard"

urlpatterns = [
    path("", views.dashboard, name="index"),
    path("data/", views.dashboard_json, name="data"),
    path("cycles/", views_drill.cycles_view, name="cycles"),
    path("cycles/<int:cycle_id>/", views_drill.healings_view, name="cycle"),
    path("healings/", views_drill.healings_view, name="healings"),
    path("orders/<int:order_id>/", views_drill.order_view, name="order"),
    path("what-if/", views_whatif.whatif_view, name="whatif"),
    path(
        "login/",
        auth_views.LoginView.as_view(
            template_name="dashboard/login.html",
            redirect_authenticated_user=True,
            next_page=reverse_lazy("dashboard:index"),
        ),
        name="login",
    ),
    path(
        "logout/",
        auth_views.LogoutView.as_view(next_page=reverse_lazy("dashboard:login")),
        name="logout",
    ),
]
